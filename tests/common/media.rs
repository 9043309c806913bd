//! Test media, generated with GStreamer's own tools on first use and kept
//! under `target/test-media/` (never committed).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Frames in every generated clip.
pub const CLIP_FRAMES: u64 = 90;

/// A generated clip: codec, container and size.
#[derive(Debug, Clone, Copy)]
pub struct Clip {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    encoder: &'static str,
    muxer: &'static str,
}

pub const CLIPS: [Clip; 4] = [
    Clip {
        name: "h264_1280x720.mp4",
        width: 1280,
        height: 720,
        encoder: "x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h264parse",
        muxer: "mp4mux",
    },
    Clip {
        name: "h264_640x360.mp4",
        width: 640,
        height: 360,
        encoder: "x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h264parse",
        muxer: "mp4mux",
    },
    Clip {
        name: "h265_1280x720.mkv",
        width: 1280,
        height: 720,
        encoder: "x265enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h265parse",
        muxer: "matroskamux",
    },
    Clip {
        name: "h265_640x360.mkv",
        width: 640,
        height: 360,
        encoder: "x265enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h265parse",
        muxer: "matroskamux",
    },
];

fn dir() -> PathBuf {
    super::repo_root().join("target/test-media")
}

/// Path of a clip, generating every clip on first call.
pub fn clip(name: &str) -> PathBuf {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        std::fs::create_dir_all(dir()).expect("cannot create target/test-media");
        for clip in CLIPS {
            let path = dir().join(clip.name);
            if path.exists() {
                continue;
            }
            let partial = dir().join(format!("{}.partial", clip.name));
            let pipeline = format!(
                "videotestsrc num-buffers={CLIP_FRAMES} pattern=ball ! video/x-raw,width={},height={},framerate=30/1,format=I420 ! {} ! {} ! filesink location={}",
                clip.width,
                clip.height,
                clip.encoder,
                clip.muxer,
                partial.display()
            );
            gst_launch(&pipeline);
            std::fs::rename(&partial, &path).expect("cannot move the generated clip into place");
        }
    });
    dir().join(name)
}

/// Runs a gst-launch-1.0 pipeline to completion (-e: EOS on finish).
pub fn gst_launch(pipeline: &str) {
    let args: Vec<&str> = pipeline.split_whitespace().collect();
    let output = Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("-e")
        .args(&args)
        .output()
        .expect("gst-launch-1.0 missing: run scripts/setup.sh");
    assert!(output.status.success(), "gst-launch-1.0 {pipeline} failed: {}", String::from_utf8_lossy(&output.stderr));
}
