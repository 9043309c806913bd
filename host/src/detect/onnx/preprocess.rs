//! From a packed RGB8 image (already scaled by GStreamer to fit the model
//! input) to the model's NCHW f32 input, written into a reusable buffer, and
//! the transform that maps model-space boxes back to source pixels.

use serde::Serialize;

/// A packed RGB8 image: `height` rows of `stride` bytes, each starting with
/// `width` RGB pixels.
#[derive(Debug, Clone, Copy)]
pub struct RgbImage<'a> {
    pub data: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub stride: usize,
}

impl<'a> RgbImage<'a> {
    /// A tightly packed image (`stride = width * 3`).
    pub fn packed(data: &'a [u8], width: u32, height: u32) -> Self {
        RgbImage { data, width, height, stride: width as usize * 3 }
    }
}

/// How the image is placed in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Aspect ratio kept, padded with grey 114, image centred (Ultralytics'
    /// `LetterBox`, also YOLOv5 and YOLOv10).
    LetterboxCentered,
    /// Aspect ratio kept, padded with 114 at the right and bottom (YOLOX's
    /// `preproc`).
    LetterboxTopLeft,
    /// Each axis scaled to the input (RT-DETR-style exports).
    Stretch,
}

/// Channel order of the input planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    Rgb,
    Bgr,
}

/// A model's preprocessing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Preprocess {
    pub input_width: u32,
    pub input_height: u32,
    pub resize: Resize,
    pub channels: Channels,
    /// Multiplier of the 0-255 values: 1/255 for Ultralytics, 1 for YOLOX.
    pub scale: f32,
}

/// Letterbox padding value (Ultralytics and YOLOX both use 114).
pub const PAD_VALUE: u8 = 114;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    #[error(
        "the image is {width}x{height} but the model input is {input_width}x{input_height} ({mode}); the pipeline \
         must scale frames to the size `fit_size` gives"
    )]
    DoesNotFit { width: u32, height: u32, input_width: u32, input_height: u32, mode: &'static str },
    #[error("the image buffer is {len} bytes, too short for {width}x{height} RGB rows of {stride} bytes")]
    ShortBuffer { len: usize, width: u32, height: u32, stride: usize },
    #[error("the source size {width}x{height} is empty")]
    EmptySource { width: u32, height: u32 },
}

/// Maps boxes between model input pixels and source pixels:
/// `model = source * scale + pad`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Transform {
    pub scale_x: f32,
    pub scale_y: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    pub source_width: u32,
    pub source_height: u32,
}

impl Transform {
    /// A model-space box (x1, y1, x2, y2) in source pixels, clipped to the
    /// source frame.
    pub fn to_source(&self, x1: f32, y1: f32, x2: f32, y2: f32) -> [f32; 4] {
        let (w, h) = (self.source_width as f32, self.source_height as f32);
        [
            ((x1 - self.pad_x) / self.scale_x).clamp(0.0, w),
            ((y1 - self.pad_y) / self.scale_y).clamp(0.0, h),
            ((x2 - self.pad_x) / self.scale_x).clamp(0.0, w),
            ((y2 - self.pad_y) / self.scale_y).clamp(0.0, h),
        ]
    }
}

impl Preprocess {
    /// Floats of one batch item.
    pub fn item_len(&self) -> usize {
        3 * self.input_width as usize * self.input_height as usize
    }

    /// The image size to ask GStreamer for: the source scaled (up or down)
    /// to fit inside the input with its aspect ratio, even dimensions (what
    /// video scalers and I420 want); the input size itself for `Stretch`.
    pub fn fit_size(&self, source_width: u32, source_height: u32) -> (u32, u32) {
        let (iw, ih) = (self.input_width, self.input_height);
        if self.resize == Resize::Stretch || source_width == 0 || source_height == 0 {
            return (iw, ih);
        }
        let ratio = (iw as f64 / source_width as f64).min(ih as f64 / source_height as f64);
        let even = |size: f64, limit: u32| -> u32 {
            let size = (size.round() as u32).min(limit);
            (size - size % 2).max(2).min(limit)
        };
        (even(source_width as f64 * ratio, iw), even(source_height as f64 * ratio, ih))
    }

    /// Writes `image` (the source frame, `source_width` x `source_height`,
    /// as scaled by the pipeline) into `out` (one batch item, NCHW) and
    /// returns the transform back to source pixels.
    pub fn write(
        &self,
        image: &RgbImage<'_>,
        source_width: u32,
        source_height: u32,
        out: &mut [f32],
    ) -> Result<Transform, PreprocessError> {
        let (iw, ih) = (self.input_width as usize, self.input_height as usize);
        let (w, h) = (image.width as usize, image.height as usize);
        if source_width == 0 || source_height == 0 {
            return Err(PreprocessError::EmptySource { width: source_width, height: source_height });
        }
        let fits = match self.resize {
            Resize::Stretch => w == iw && h == ih,
            _ => w <= iw && h <= ih && w > 0 && h > 0,
        };
        if !fits {
            return Err(PreprocessError::DoesNotFit {
                width: image.width,
                height: image.height,
                input_width: self.input_width,
                input_height: self.input_height,
                mode: if self.resize == Resize::Stretch { "stretched: sizes must be equal" } else { "letterboxed" },
            });
        }
        if image.stride < w * 3 || image.data.len() < (h - 1) * image.stride + w * 3 {
            return Err(PreprocessError::ShortBuffer {
                len: image.data.len(),
                width: image.width,
                height: image.height,
                stride: image.stride,
            });
        }
        // Ultralytics rounds the centred padding with a -0.1 bias
        // (`round(dw - 0.1)`), so an odd remainder puts the extra pixel on
        // the right/bottom.
        let (pad_x, pad_y) = match self.resize {
            Resize::LetterboxCentered => (
                (((iw - w) as f64 / 2.0) - 0.1).round().max(0.0) as usize,
                (((ih - h) as f64 / 2.0) - 0.1).round().max(0.0) as usize,
            ),
            Resize::LetterboxTopLeft | Resize::Stretch => (0, 0),
        };
        let plane = iw * ih;
        let out = &mut out[..3 * plane];
        let mut lut = [0f32; 256];
        for (value, slot) in lut.iter_mut().enumerate() {
            *slot = value as f32 * self.scale;
        }
        let pad = lut[PAD_VALUE as usize];
        let order: [usize; 3] = match self.channels {
            Channels::Rgb => [0, 1, 2],
            Channels::Bgr => [2, 1, 0],
        };
        let (p0, rest) = out.split_at_mut(plane);
        let (p1, p2) = rest.split_at_mut(plane);
        for p in [&mut *p0, &mut *p1, &mut *p2] {
            p[..pad_y * iw].fill(pad);
            p[(pad_y + h) * iw..].fill(pad);
        }
        for y in 0..h {
            let row = &image.data[y * image.stride..y * image.stride + w * 3];
            let base = (pad_y + y) * iw;
            for p in [&mut *p0, &mut *p1, &mut *p2] {
                p[base..base + pad_x].fill(pad);
                p[base + pad_x + w..base + iw].fill(pad);
            }
            let (r0, r1, r2) = (
                &mut p0[base + pad_x..base + pad_x + w],
                &mut p1[base + pad_x..base + pad_x + w],
                &mut p2[base + pad_x..base + pad_x + w],
            );
            for (x, pixel) in row.chunks_exact(3).enumerate() {
                r0[x] = lut[pixel[order[0]] as usize];
                r1[x] = lut[pixel[order[1]] as usize];
                r2[x] = lut[pixel[order[2]] as usize];
            }
        }
        Ok(Transform {
            scale_x: w as f32 / source_width as f32,
            scale_y: h as f32 / source_height as f32,
            pad_x: pad_x as f32,
            pad_y: pad_y as f32,
            source_width,
            source_height,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ultralytics(w: u32, h: u32) -> Preprocess {
        Preprocess {
            input_width: w,
            input_height: h,
            resize: Resize::LetterboxCentered,
            channels: Channels::Rgb,
            scale: 1.0 / 255.0,
        }
    }

    #[test]
    fn fit_size_keeps_the_aspect_ratio_with_even_sides() {
        let p = ultralytics(640, 640);
        // vtest.avi: 768x576 -> 640x480.
        assert_eq!(p.fit_size(768, 576), (640, 480));
        // 1920x1080 -> 640x360; 451x300 (chelsea) -> 640x425.7 -> 640x426.
        assert_eq!(p.fit_size(1920, 1080), (640, 360));
        assert_eq!(p.fit_size(451, 300), (640, 426));
        // Portrait, and upscaling a small source.
        assert_eq!(p.fit_size(300, 451), (426, 640));
        assert_eq!(p.fit_size(160, 120), (640, 480));
        let stretch = Preprocess { resize: Resize::Stretch, ..p };
        assert_eq!(stretch.fit_size(1920, 1080), (640, 640));
    }

    #[test]
    fn letterbox_centres_pads_114_and_scales() {
        // A 4x2 image into 4x4: one pad row above, one below (Ultralytics:
        // dh = 1, top = round(0.9) = 1, bottom = round(1.1) = 1).
        let p = ultralytics(4, 4);
        let mut data = Vec::new();
        for i in 0..8u8 {
            data.extend_from_slice(&[i * 10, 100 + i, 255 - i]);
        }
        let image = RgbImage::packed(&data, 4, 2);
        let mut out = vec![-1.0f32; 3 * 16];
        let t = p.write(&image, 8, 4, &mut out).unwrap();
        // v * (1/255), as the model's scale is applied.
        let s = 1.0f32 / 255.0;
        let pad = 114.0 * s;
        let r = &out[..16];
        assert!(r[..4].iter().all(|&v| v == pad) && r[12..].iter().all(|&v| v == pad), "{r:?}");
        assert_eq!(r[4], 0.0);
        assert_eq!(r[5], 10.0 * s);
        assert_eq!(out[16 + 4 * 2 + 3], 107.0 * s, "green of pixel (3, 1)");
        assert_eq!(out[32 + 4 * 2], 251.0 * s, "blue of pixel (0, 1)");
        assert_eq!(
            t,
            Transform { scale_x: 0.5, scale_y: 0.5, pad_x: 0.0, pad_y: 1.0, source_width: 8, source_height: 4 }
        );
        // The image's top-left pixel in model space is (0, 1); in the 8x4
        // source it is (0, 0); the image's bottom-right (4, 3) is (8, 4).
        assert_eq!(t.to_source(0.0, 1.0, 4.0, 3.0), [0.0, 0.0, 8.0, 4.0]);
        assert_eq!(t.to_source(-5.0, -5.0, 99.0, 99.0), [0.0, 0.0, 8.0, 4.0], "clipped");
    }

    #[test]
    fn odd_padding_puts_the_extra_pixel_right() {
        // 3 columns into 6: dw = 1.5, left = round(1.4) = 1, right = 2.
        let p = ultralytics(6, 2);
        let data = [200u8; 3 * 3 * 2];
        let mut out = vec![0.0f32; 3 * 12];
        let t = p.write(&RgbImage::packed(&data, 3, 2), 3, 2, &mut out).unwrap();
        assert_eq!(t.pad_x, 1.0);
        let row: Vec<u8> = out[..6].iter().map(|v| (v * 255.0).round() as u8).collect();
        assert_eq!(row, [114, 200, 200, 200, 114, 114]);
    }

    #[test]
    fn yolox_pads_bottom_right_in_bgr_without_scaling() {
        let p = Preprocess {
            input_width: 4,
            input_height: 4,
            resize: Resize::LetterboxTopLeft,
            channels: Channels::Bgr,
            scale: 1.0,
        };
        // Rows padded to a stride of 8 bytes, as GStreamer aligns them.
        let data = [10, 20, 30, 11, 21, 31, 0, 0, 12, 22, 32, 13, 23, 33, 0, 0];
        let image = RgbImage { data: &data, width: 2, height: 2, stride: 8 };
        let mut out = vec![0.0f32; 48];
        let t = p.write(&image, 2, 2, &mut out).unwrap();
        assert_eq!((t.pad_x, t.pad_y), (0.0, 0.0));
        assert_eq!(&out[..4], &[30.0, 31.0, 114.0, 114.0], "plane 0 is blue");
        assert_eq!(&out[4..8], &[32.0, 33.0, 114.0, 114.0]);
        assert_eq!(&out[8..16], &[114.0; 8]);
        assert_eq!(out[32], 10.0, "plane 2 is red");
    }

    #[test]
    fn refuses_images_that_do_not_fit_or_are_short() {
        let p = ultralytics(4, 4);
        let data = [0u8; 5 * 3 * 2];
        let mut out = vec![0.0f32; 48];
        let error = p.write(&RgbImage::packed(&data, 5, 2), 5, 2, &mut out).unwrap_err();
        assert!(error.to_string().contains("5x2") && error.to_string().contains("fit_size"), "{error}");
        let error = p.write(&RgbImage::packed(&data[..10], 4, 2), 4, 2, &mut out).unwrap_err();
        assert!(matches!(error, PreprocessError::ShortBuffer { .. }));
        let stretch = Preprocess { resize: Resize::Stretch, ..p };
        assert!(stretch.write(&RgbImage::packed(&data, 4, 2), 4, 2, &mut out).is_err());
        assert!(p.write(&RgbImage::packed(&data, 4, 2), 0, 2, &mut out).is_err());
    }
}
