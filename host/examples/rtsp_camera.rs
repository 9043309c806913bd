//! A stand-in RTSP camera for benchmarks (`scripts/soak.sh`): serves a moving
//! ball as H.264 at `rtsp://127.0.0.1:PORT/cam` until it is killed, which is
//! what the soak does to it every few minutes.
//!
//! Run: `cargo run --release -p dshost --example rtsp_camera -- PORT`

use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args().nth(1).unwrap_or_else(|| "8554".to_string()).parse()?;
    gst::init()?;
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&port.to_string());
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=15/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtph264pay name=pay0 pt=96 )",
    );
    factory.set_shared(true);
    server.mount_points().ok_or_else(|| anyhow::anyhow!("no mount points"))?.add_factory("/cam", factory);
    let _source = server.attach(None)?;
    eprintln!("rtsp_camera: serving rtsp://127.0.0.1:{port}/cam");
    gst::glib::MainLoop::new(None, false).run();
    Ok(())
}
