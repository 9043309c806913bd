//! `#[repr(C)]` mirrors of DeepStream's metadata structs (x86_64 and
//! aarch64 lay them out the same), from `docs/deepstream.md`.
//!
//! Only two layouts matter to the reader: `NvDsObjectMeta` grew by 8 bytes
//! in 9.0 (`NvOSD_RectParams` gained `rotation_angle`), which moved every
//! field after `rect_params`. Frame and batch fields the reader uses sit at
//! the same offsets in 5.0 to 9.x; only the frame's tail grew (6.0, 8.0).
//! DeepStream 4.0 (integer rectangles, no tracker boxes) is not supported.

#![allow(non_camel_case_types, non_snake_case)]

use std::ffi::{c_char, c_int, c_uint, c_void};

/// `GList` (`NvDsMetaList`, `NvDsFrameMetaList`, ...).
#[repr(C)]
pub struct GList {
    pub data: *mut c_void,
    pub next: *mut GList,
    pub prev: *mut GList,
}

#[repr(C)]
pub struct NvDsBaseMeta {
    pub batch_meta: *mut NvDsBatchMeta,
    pub meta_type: c_int,
    pub uContext: *mut c_void,
    pub copy_func: *mut c_void,
    pub release_func: *mut c_void,
}

/// `GRecMutex`: a pointer and two guints.
#[repr(C)]
pub struct GRecMutex {
    pub p: *mut c_void,
    pub i: [c_uint; 2],
}

#[repr(C)]
pub struct NvDsBatchMeta {
    pub base_meta: NvDsBaseMeta,
    pub max_frames_in_batch: c_uint,
    pub num_frames_in_batch: c_uint,
    pub frame_meta_pool: *mut NvDsMetaPool,
    pub obj_meta_pool: *mut NvDsMetaPool,
    pub classifier_meta_pool: *mut NvDsMetaPool,
    pub display_meta_pool: *mut NvDsMetaPool,
    pub user_meta_pool: *mut NvDsMetaPool,
    pub label_info_meta_pool: *mut NvDsMetaPool,
    pub frame_meta_list: *mut GList,
    pub batch_user_meta_list: *mut GList,
    pub meta_mutex: GRecMutex,
    pub misc_batch_info: [i64; 4],
    pub reserved: [i64; 4],
}

#[repr(C)]
pub struct NvDsMetaPool {
    pub meta_type: c_int,
    pub max_elements_in_pool: c_uint,
    /// sizeof the pooled struct: the ABI fingerprint.
    pub element_size: c_uint,
    pub num_empty_elements: c_uint,
    pub num_full_elements: c_uint,
    pub empty_list: *mut GList,
    pub full_list: *mut GList,
    pub copy_func: *mut c_void,
    pub release_func: *mut c_void,
}

/// `GstMeta`: flags and the info pointer.
#[repr(C)]
pub struct GstMeta {
    pub flags: c_uint,
    pub info: *const c_void,
}

/// `NvDsMeta`: the `GstMeta` that carries a batch meta on a buffer.
#[repr(C)]
pub struct NvDsMeta {
    pub meta: GstMeta,
    pub meta_data: *mut c_void,
    pub user_data: *mut c_void,
    pub meta_type: c_int,
    pub copyfunc: *mut c_void,
    pub freefunc: *mut c_void,
    pub gst_to_nvds_meta_transform_func: *mut c_void,
    pub gst_to_nvds_meta_release_func: *mut c_void,
}

/// `NVDS_BATCH_GST_META`: `NvDsMeta::meta_type` of a batch meta.
pub const NVDS_BATCH_GST_META: c_int = 4097;
/// `UNTRACKED_OBJECT_ID`.
pub const UNTRACKED_OBJECT_ID: u64 = u64::MAX;

#[repr(C)]
pub struct NvDsUserMeta {
    pub base_meta: NvDsBaseMeta,
    pub user_meta_data: *mut c_void,
}

#[repr(C)]
pub struct NvDsLabelInfo {
    pub base_meta: NvDsBaseMeta,
    pub num_classes: c_uint,
    pub result_label: [c_char; 128],
    pub pResult_label: *mut c_char,
    pub result_class_id: c_uint,
    pub label_id: c_uint,
    pub result_prob: f32,
}

/// `NvDsClassifierMeta` of 5.x.
#[repr(C)]
pub struct NvDsClassifierMetaV5 {
    pub base_meta: NvDsBaseMeta,
    pub num_labels: c_uint,
    pub unique_component_id: c_int,
    pub label_info_list: *mut GList,
}

/// `NvDsClassifierMeta` from 6.0 on.
#[repr(C)]
pub struct NvDsClassifierMetaV6 {
    pub base_meta: NvDsBaseMeta,
    pub num_labels: c_uint,
    pub unique_component_id: c_int,
    pub label_info_list: *mut GList,
    pub classifier_type: *const c_char,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NvOSD_ColorParams {
    pub red: f64,
    pub green: f64,
    pub blue: f64,
    pub alpha: f64,
}

#[repr(C)]
pub struct NvOSD_FontParams {
    pub font_name: *mut c_char,
    pub font_size: c_uint,
    pub font_color: NvOSD_ColorParams,
}

#[repr(C)]
pub struct NvOSD_TextParams {
    pub display_text: *mut c_char,
    pub x_offset: c_uint,
    pub y_offset: c_uint,
    pub font_params: NvOSD_FontParams,
    pub set_bg_clr: c_int,
    pub text_bg_clr: NvOSD_ColorParams,
}

#[repr(C)]
pub struct NvOSD_MaskParams {
    pub data: *mut f32,
    pub size: c_uint,
    pub threshold: f32,
    pub width: c_uint,
    pub height: c_uint,
}

/// `NvOSD_RectParams` of 5.0 to 8.0 (float coordinates).
#[repr(C)]
pub struct NvOSD_RectParamsV5 {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub border_width: c_uint,
    pub border_color: NvOSD_ColorParams,
    pub has_bg_color: c_uint,
    pub reserved: c_uint,
    pub bg_color: NvOSD_ColorParams,
    pub has_color_info: c_int,
    pub color_id: c_int,
}

/// `NvOSD_RectParams` of 9.x: `rotation_angle` appended (oriented boxes).
#[repr(C)]
pub struct NvOSD_RectParamsV9 {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub border_width: c_uint,
    pub border_color: NvOSD_ColorParams,
    pub has_bg_color: c_uint,
    pub reserved: c_uint,
    pub bg_color: NvOSD_ColorParams,
    pub has_color_info: c_int,
    pub color_id: c_int,
    pub rotation_angle: f32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NvBbox_Coords {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
}

/// `NvDsComp_BboxInfo`.
#[repr(C)]
pub struct NvDsComp_BboxInfo {
    pub org_bbox_coords: NvBbox_Coords,
}

/// The fields of `NvDsFrameMeta` that every version from 5.0 shares
/// (offsets 0 to 160); the versions differ only after them.
#[repr(C)]
pub struct NvDsFrameMetaHead {
    pub base_meta: NvDsBaseMeta,
    pub pad_index: c_uint,
    pub batch_id: c_uint,
    pub frame_num: c_int,
    /// The buffer's PTS (there is no other PTS field).
    pub buf_pts: u64,
    pub ntp_timestamp: u64,
    pub source_id: c_uint,
    pub num_surfaces_per_frame: c_int,
    pub source_frame_width: c_uint,
    pub source_frame_height: c_uint,
    pub surface_type: c_uint,
    pub surface_index: c_uint,
    pub num_obj_meta: c_uint,
    pub bInferDone: c_int,
    pub obj_meta_list: *mut GList,
    pub display_meta_list: *mut GList,
    pub frame_user_meta_list: *mut GList,
    pub misc_frame_info: [i64; 4],
}

/// `NvDsFrameMeta` of 5.x (192 bytes).
#[repr(C)]
pub struct NvDsFrameMetaV5 {
    pub head: NvDsFrameMetaHead,
    pub reserved: [i64; 4],
}

/// `NvDsFrameMeta` of 6.0 to 7.1 (200 bytes).
#[repr(C)]
pub struct NvDsFrameMetaV6 {
    pub head: NvDsFrameMetaHead,
    pub pipeline_width: c_uint,
    pub pipeline_height: c_uint,
    pub reserved: [i64; 4],
}

/// `NvDsFrameMeta` of 8.0 and 9.x (232 bytes): `NvDsSensorInfo_meta` inline.
#[repr(C)]
pub struct NvDsFrameMetaV8 {
    pub head: NvDsFrameMetaHead,
    pub pipeline_width: c_uint,
    pub pipeline_height: c_uint,
    /// `NvDsSensorInfo_meta` (source id, uri, sensor id, sensor name); not read.
    pub sensorInfo_meta: [u64; 4],
    pub reserved: [i64; 4],
}

/// `NvDsObjectMeta` of 5.0 to 8.0 (544 bytes).
#[repr(C)]
pub struct NvDsObjectMetaV5 {
    pub base_meta: NvDsBaseMeta,
    pub parent: *mut c_void,
    pub unique_component_id: c_int,
    pub class_id: c_int,
    pub object_id: u64,
    pub detector_bbox_info: NvDsComp_BboxInfo,
    pub tracker_bbox_info: NvDsComp_BboxInfo,
    pub confidence: f32,
    pub tracker_confidence: f32,
    pub rect_params: NvOSD_RectParamsV5,
    pub mask_params: NvOSD_MaskParams,
    pub text_params: NvOSD_TextParams,
    pub obj_label: [c_char; 128],
    pub classifier_meta_list: *mut GList,
    pub obj_user_meta_list: *mut GList,
    pub misc_obj_info: [i64; 4],
    pub reserved: [i64; 4],
}

/// `NvDsObjectMeta` of 9.x (552 bytes): everything after `rect_params` moved by 8.
#[repr(C)]
pub struct NvDsObjectMetaV9 {
    pub base_meta: NvDsBaseMeta,
    pub parent: *mut c_void,
    pub unique_component_id: c_int,
    pub class_id: c_int,
    pub object_id: u64,
    pub detector_bbox_info: NvDsComp_BboxInfo,
    pub tracker_bbox_info: NvDsComp_BboxInfo,
    pub confidence: f32,
    pub tracker_confidence: f32,
    pub rect_params: NvOSD_RectParamsV9,
    pub mask_params: NvOSD_MaskParams,
    pub text_params: NvOSD_TextParams,
    pub obj_label: [c_char; 128],
    pub classifier_meta_list: *mut GList,
    pub obj_user_meta_list: *mut GList,
    pub misc_obj_info: [i64; 4],
    pub reserved: [i64; 4],
}

/// `NvOSD_LineParams`.
#[repr(C)]
pub struct NvOSD_LineParams {
    pub x1: c_uint,
    pub y1: c_uint,
    pub x2: c_uint,
    pub y2: c_uint,
    pub line_width: c_uint,
    pub line_color: NvOSD_ColorParams,
}

/// `NvOSD_ArrowParams`.
#[repr(C)]
pub struct NvOSD_ArrowParams {
    pub x1: c_uint,
    pub y1: c_uint,
    pub x2: c_uint,
    pub y2: c_uint,
    pub arrow_width: c_uint,
    pub arrow_head: c_int,
    pub arrow_color: NvOSD_ColorParams,
    pub reserved: c_uint,
}

/// `NvOSD_CircleParams`.
#[repr(C)]
pub struct NvOSD_CircleParams {
    pub xc: c_uint,
    pub yc: c_uint,
    pub radius: c_uint,
    pub circle_color: NvOSD_ColorParams,
    pub has_bg_color: c_uint,
    pub bg_color: NvOSD_ColorParams,
    pub reserved: c_uint,
}

/// `NvDsDisplayMeta` (16 of each element, `MAX_ELEMENTS_IN_DISPLAY_META`);
/// generic over the rectangle type, the only part that changed (9.0).
/// dshost does not read display metas; the sizes pin the rectangle change.
#[repr(C)]
pub struct NvDsDisplayMeta<R> {
    pub base_meta: NvDsBaseMeta,
    pub num_rects: c_uint,
    pub num_labels: c_uint,
    pub num_lines: c_uint,
    pub num_arrows: c_uint,
    pub num_circles: c_uint,
    pub rect_params: [R; 16],
    pub text_params: [NvOSD_TextParams; 16],
    pub line_params: [NvOSD_LineParams; 16],
    pub arrow_params: [NvOSD_ArrowParams; 16],
    pub circle_params: [NvOSD_CircleParams; 16],
    pub misc_osd_data: [i64; 4],
    pub reserved: [i64; 4],
}

#[cfg(test)]
mod tests {
    //! Every size and offset stated in `docs/deepstream.md` ("Struct layouts").
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn unchanged_structs() {
        assert_eq!(size_of::<GList>(), 24);
        assert_eq!((offset_of!(GList, data), offset_of!(GList, next), offset_of!(GList, prev)), (0, 8, 16));

        assert_eq!(size_of::<NvDsBaseMeta>(), 40);
        assert_eq!(offset_of!(NvDsBaseMeta, batch_meta), 0);
        assert_eq!(offset_of!(NvDsBaseMeta, meta_type), 8);
        assert_eq!(offset_of!(NvDsBaseMeta, uContext), 16);
        assert_eq!(offset_of!(NvDsBaseMeta, copy_func), 24);
        assert_eq!(offset_of!(NvDsBaseMeta, release_func), 32);

        assert_eq!(size_of::<NvDsBatchMeta>(), 192);
        assert_eq!(offset_of!(NvDsBatchMeta, max_frames_in_batch), 40);
        assert_eq!(offset_of!(NvDsBatchMeta, num_frames_in_batch), 44);
        assert_eq!(offset_of!(NvDsBatchMeta, frame_meta_pool), 48);
        assert_eq!(offset_of!(NvDsBatchMeta, obj_meta_pool), 56);
        assert_eq!(offset_of!(NvDsBatchMeta, classifier_meta_pool), 64);
        assert_eq!(offset_of!(NvDsBatchMeta, display_meta_pool), 72);
        assert_eq!(offset_of!(NvDsBatchMeta, user_meta_pool), 80);
        assert_eq!(offset_of!(NvDsBatchMeta, label_info_meta_pool), 88);
        assert_eq!(offset_of!(NvDsBatchMeta, frame_meta_list), 96);
        assert_eq!(offset_of!(NvDsBatchMeta, batch_user_meta_list), 104);
        assert_eq!(offset_of!(NvDsBatchMeta, meta_mutex), 112);
        assert_eq!(size_of::<GRecMutex>(), 16);
        assert_eq!(offset_of!(NvDsBatchMeta, misc_batch_info), 128);
        assert_eq!(offset_of!(NvDsBatchMeta, reserved), 160);

        assert_eq!(size_of::<NvDsMetaPool>(), 56);
        assert_eq!(offset_of!(NvDsMetaPool, element_size), 8);

        assert_eq!(size_of::<NvDsMeta>(), 72);
        assert_eq!(offset_of!(NvDsMeta, meta_data), 16);
        assert_eq!(offset_of!(NvDsMeta, meta_type), 32);

        assert_eq!(size_of::<NvDsUserMeta>(), 48);
        assert_eq!(offset_of!(NvDsUserMeta, user_meta_data), 40);

        assert_eq!(size_of::<NvDsLabelInfo>(), 200);
        assert_eq!(offset_of!(NvDsLabelInfo, result_label), 44);
        assert_eq!(offset_of!(NvDsLabelInfo, result_class_id), 184);
        assert_eq!(offset_of!(NvDsLabelInfo, result_prob), 192);

        assert_eq!(size_of::<NvOSD_TextParams>(), 104);
        assert_eq!(size_of::<NvOSD_ColorParams>(), 32);
        assert_eq!(size_of::<NvOSD_MaskParams>(), 24);
        assert_eq!(size_of::<NvBbox_Coords>(), 16);
    }

    #[test]
    fn frame_meta_fields_shared_by_every_version() {
        assert_eq!(size_of::<NvDsFrameMetaHead>(), 160);
        assert_eq!(offset_of!(NvDsFrameMetaHead, pad_index), 40);
        assert_eq!(offset_of!(NvDsFrameMetaHead, batch_id), 44);
        assert_eq!(offset_of!(NvDsFrameMetaHead, frame_num), 48);
        assert_eq!(offset_of!(NvDsFrameMetaHead, buf_pts), 56);
        assert_eq!(offset_of!(NvDsFrameMetaHead, ntp_timestamp), 64);
        assert_eq!(offset_of!(NvDsFrameMetaHead, source_id), 72);
        assert_eq!(offset_of!(NvDsFrameMetaHead, num_surfaces_per_frame), 76);
        assert_eq!(offset_of!(NvDsFrameMetaHead, source_frame_width), 80);
        assert_eq!(offset_of!(NvDsFrameMetaHead, source_frame_height), 84);
        assert_eq!(offset_of!(NvDsFrameMetaHead, surface_type), 88);
        assert_eq!(offset_of!(NvDsFrameMetaHead, surface_index), 92);
        assert_eq!(offset_of!(NvDsFrameMetaHead, num_obj_meta), 96);
        assert_eq!(offset_of!(NvDsFrameMetaHead, bInferDone), 100);
        assert_eq!(offset_of!(NvDsFrameMetaHead, obj_meta_list), 104);
        assert_eq!(offset_of!(NvDsFrameMetaHead, display_meta_list), 112);
        assert_eq!(offset_of!(NvDsFrameMetaHead, frame_user_meta_list), 120);
        assert_eq!(offset_of!(NvDsFrameMetaHead, misc_frame_info), 128);
    }

    #[test]
    fn frame_meta_per_version() {
        assert_eq!(size_of::<NvDsFrameMetaV5>(), 192);
        assert_eq!(offset_of!(NvDsFrameMetaV5, reserved), 160);
        assert_eq!(size_of::<NvDsFrameMetaV6>(), 200);
        assert_eq!(offset_of!(NvDsFrameMetaV6, pipeline_width), 160);
        assert_eq!(offset_of!(NvDsFrameMetaV6, pipeline_height), 164);
        assert_eq!(offset_of!(NvDsFrameMetaV6, reserved), 168);
        assert_eq!(size_of::<NvDsFrameMetaV8>(), 232);
        assert_eq!(offset_of!(NvDsFrameMetaV8, sensorInfo_meta), 168);
        assert_eq!(offset_of!(NvDsFrameMetaV8, reserved), 200);
    }

    #[test]
    fn rect_params() {
        assert_eq!(size_of::<NvOSD_RectParamsV5>(), 104);
        assert_eq!(size_of::<NvOSD_RectParamsV9>(), 112);
        assert_eq!(offset_of!(NvOSD_RectParamsV9, rotation_angle), 104);
        for (left, top, width, height) in [
            (
                offset_of!(NvOSD_RectParamsV5, left),
                offset_of!(NvOSD_RectParamsV5, top),
                offset_of!(NvOSD_RectParamsV5, width),
                offset_of!(NvOSD_RectParamsV5, height),
            ),
            (
                offset_of!(NvOSD_RectParamsV9, left),
                offset_of!(NvOSD_RectParamsV9, top),
                offset_of!(NvOSD_RectParamsV9, width),
                offset_of!(NvOSD_RectParamsV9, height),
            ),
        ] {
            assert_eq!((left, top, width, height), (0, 4, 8, 12));
        }
    }

    #[test]
    fn object_meta_5_to_8() {
        type O = NvDsObjectMetaV5;
        assert_eq!(size_of::<O>(), 544);
        assert_eq!(offset_of!(O, unique_component_id), 48);
        assert_eq!(offset_of!(O, class_id), 52);
        assert_eq!(offset_of!(O, object_id), 56);
        assert_eq!(offset_of!(O, detector_bbox_info), 64);
        assert_eq!(offset_of!(O, tracker_bbox_info), 80);
        assert_eq!(offset_of!(O, confidence), 96);
        assert_eq!(offset_of!(O, tracker_confidence), 100);
        assert_eq!(offset_of!(O, rect_params), 104);
        assert_eq!(offset_of!(O, mask_params), 208);
        assert_eq!(offset_of!(O, text_params), 232);
        assert_eq!(offset_of!(O, obj_label), 336);
        assert_eq!(offset_of!(O, classifier_meta_list), 464);
        assert_eq!(offset_of!(O, obj_user_meta_list), 472);
        assert_eq!(offset_of!(O, misc_obj_info), 480);
        assert_eq!(offset_of!(O, reserved), 512);
    }

    #[test]
    fn object_meta_9() {
        type O = NvDsObjectMetaV9;
        assert_eq!(size_of::<O>(), 552);
        assert_eq!(offset_of!(O, unique_component_id), 48);
        assert_eq!(offset_of!(O, class_id), 52);
        assert_eq!(offset_of!(O, object_id), 56);
        assert_eq!(offset_of!(O, detector_bbox_info), 64);
        assert_eq!(offset_of!(O, tracker_bbox_info), 80);
        assert_eq!(offset_of!(O, confidence), 96);
        assert_eq!(offset_of!(O, tracker_confidence), 100);
        assert_eq!(offset_of!(O, rect_params), 104);
        assert_eq!(offset_of!(O, mask_params), 216);
        assert_eq!(offset_of!(O, text_params), 240);
        assert_eq!(offset_of!(O, obj_label), 344);
        assert_eq!(offset_of!(O, classifier_meta_list), 472);
        assert_eq!(offset_of!(O, obj_user_meta_list), 480);
        assert_eq!(offset_of!(O, misc_obj_info), 488);
        assert_eq!(offset_of!(O, reserved), 520);
    }

    #[test]
    fn display_meta() {
        assert_eq!(size_of::<NvDsDisplayMeta<NvOSD_RectParamsV5>>(), 6912);
        assert_eq!(size_of::<NvDsDisplayMeta<NvOSD_RectParamsV9>>(), 7040);
    }

    #[test]
    fn classifier_meta() {
        assert_eq!(size_of::<NvDsClassifierMetaV5>(), 56);
        assert_eq!(size_of::<NvDsClassifierMetaV6>(), 64);
        for (num, uid, list) in [
            (
                offset_of!(NvDsClassifierMetaV5, num_labels),
                offset_of!(NvDsClassifierMetaV5, unique_component_id),
                offset_of!(NvDsClassifierMetaV5, label_info_list),
            ),
            (
                offset_of!(NvDsClassifierMetaV6, num_labels),
                offset_of!(NvDsClassifierMetaV6, unique_component_id),
                offset_of!(NvDsClassifierMetaV6, label_info_list),
            ),
        ] {
            assert_eq!((num, uid, list), (40, 44, 48));
        }
        assert_eq!(offset_of!(NvDsClassifierMetaV6, classifier_type), 56);
    }
}
