//! VP8 (RFC 6386) encoder and decoder over the system libvpx, through `env-libvpx-sys`.
//!
//! All of the crate's `unsafe` code is in this module. The rules it keeps:
//! * A libvpx context lives in a `Box`, so its address never changes while libvpx holds it,
//!   and is destroyed exactly once, by the owning wrapper's `Drop`, only if it was initialised.
//! * libvpx's C enums are Rust enums in the bindings; a value read back from libvpx that the
//!   bindings do not list would be undefined behaviour, so such fields (packet kind, image
//!   format) are read as plain integers.
//! * Every pointer libvpx hands back (packets, decoded images) is copied out before the next
//!   call into the same context, which may free it.
//! * Bytes from a peer reach libvpx only through `vpx_codec_decode` with their exact length.

#![allow(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

use std::ffi::{CStr, c_int, c_uint, c_ulong};
use std::mem::MaybeUninit;
use std::ptr;

use vpx_sys::{
    VPX_DECODER_ABI_VERSION, VPX_DL_REALTIME, VPX_EFLAG_FORCE_KF, VPX_ENCODER_ABI_VERSION,
    VPX_ERROR_RESILIENT_DEFAULT, VPX_FRAME_IS_KEY, vp8_dec_control_id, vp8e_enc_control_id,
    vpx_codec_ctx_t, vpx_codec_cx_pkt_kind, vpx_codec_dec_cfg_t, vpx_codec_enc_cfg_t,
    vpx_codec_err_t, vpx_codec_iter_t, vpx_image_t, vpx_img_fmt,
};

use crate::{Error, I420Frame, Result};

/// RTP clock rate of video (RFC 7741 §4.1 for VP8): [`Vp8Encoder::encode`] takes presentation
/// times in these ticks, so an RTP timestamp (unwrapped to 64 bits) can be passed as it is.
pub const RTP_VIDEO_CLOCK_RATE: u32 = 90_000;

/// VP8's frame header codes width and height in 14 bits.
const VP8_MAX_DIMENSION: u32 = 16_383;

/// Encoder settings. [`Vp8EncoderConfig::new`] gives the real-time call settings below; change
/// fields before [`Vp8Encoder::new`], or bitrate and frame rate later through the encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vp8EncoderConfig {
    /// Picture size the encoder starts with; a frame of another size re-initialises it.
    pub width: u32,
    pub height: u32,
    /// Target bitrate in kbit/s (constant-bitrate rate control).
    pub bitrate_kbps: u32,
    /// Nominal frames per second: how long each frame is shown, for rate control.
    pub frame_rate: u32,
    /// At most this many frames between keyframes. Keyframes are mainly sent on request
    /// ([`Vp8Encoder::request_keyframe`], from RTCP PLI/FIR), so this is a long backstop; 3000
    /// is what libwebrtc uses.
    pub max_keyframe_interval: u32,
    /// libvpx speed 0..=16 (its `cpu-used`): higher is faster and coarser. 8 suits two cores.
    pub speed: u8,
    /// Encoder threads. One leaves the other core of a two-core machine to the decoder and the
    /// rest of the call.
    pub threads: u32,
    /// Let the encoder skip frames when it is over budget, instead of overshooting the bitrate.
    /// Off by default so every input frame gives an output frame.
    pub drop_frames: bool,
}

impl Vp8EncoderConfig {
    pub fn new(width: u32, height: u32, bitrate_kbps: u32) -> Self {
        Self {
            width,
            height,
            bitrate_kbps,
            frame_rate: 30,
            max_keyframe_interval: 3000,
            speed: 8,
            threads: 1,
            drop_frames: false,
        }
    }

    fn validate(&self) -> Result<()> {
        check_vp8_size(self.width, self.height)?;
        if self.bitrate_kbps == 0 {
            return Err(Error::InvalidArgument("bitrate must be above zero"));
        }
        if self.frame_rate == 0 || self.frame_rate > RTP_VIDEO_CLOCK_RATE {
            return Err(Error::InvalidArgument("frame rate out of range"));
        }
        if self.max_keyframe_interval == 0 {
            return Err(Error::InvalidArgument(
                "keyframe interval must be above zero",
            ));
        }
        if self.speed > 16 {
            return Err(Error::InvalidArgument("speed must be 0..=16"));
        }
        if self.threads == 0 || self.threads > 64 {
            return Err(Error::InvalidArgument("threads must be 1..=64"));
        }
        Ok(())
    }

    /// Ticks of the 90 kHz clock each frame is shown for.
    fn frame_duration(&self) -> c_ulong {
        c_ulong::from(RTP_VIDEO_CLOCK_RATE / self.frame_rate)
    }
}

fn check_vp8_size(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 || width > VP8_MAX_DIMENSION || height > VP8_MAX_DIMENSION {
        return Err(Error::InvalidSize { width, height });
    }
    Ok(())
}

/// One compressed VP8 frame, ready for RTP packetisation (RFC 7741).
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    pub data: Vec<u8>,
    pub keyframe: bool,
    /// The presentation time given to [`Vp8Encoder::encode`], in 90 kHz ticks.
    pub pts: i64,
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Debug for EncodedFrame {
    // The payload bytes would flood any log or assertion message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedFrame")
            .field("bytes", &self.data.len())
            .field("keyframe", &self.keyframe)
            .field("pts", &self.pts)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// An initialised libvpx codec context, owned.
struct Context {
    raw: Box<vpx_codec_ctx_t>,
}

// SAFETY: a libvpx context has no thread affinity (no thread-local state; its own worker
// threads, if any, are joined by `vpx_codec_destroy`), and this wrapper only reaches it through
// `&mut self`, so moving it to another thread is sound. It is not `Sync`.
unsafe impl Send for Context {}

impl Context {
    /// A zeroed context for an `*_init_ver` call to fill.
    fn blank() -> Box<vpx_codec_ctx_t> {
        // SAFETY: `vpx_codec_ctx_t` is pointers, integers, a union of pointers and
        // `vpx_codec_err_t`, whose zero is `VPX_CODEC_OK`: all-zero is a valid value, and it is
        // what libvpx's own examples pass to the init functions.
        Box::new(unsafe { MaybeUninit::<vpx_codec_ctx_t>::zeroed().assume_init() })
    }

    fn as_ptr(&mut self) -> *mut vpx_codec_ctx_t {
        &mut *self.raw
    }

    /// The context's last error, with libvpx's detail when it gave one.
    fn error_message(&mut self) -> String {
        let ctx = self.as_ptr();
        // SAFETY: `ctx` is an initialised context; both functions return null or a
        // NUL-terminated string that stays valid until the next call on the context, and it is
        // copied into a `String` at once.
        unsafe {
            let mut message = c_str(vpx_sys::vpx_codec_error(ctx));
            let detail = c_str(vpx_sys::vpx_codec_error_detail(ctx));
            if !detail.is_empty() {
                message.push_str(": ");
                message.push_str(&detail);
            }
            message
        }
    }

    /// Sets an integer control (`vpx_codec_control_` is variadic; every control used here
    /// takes an `int` or `unsigned int`, which C passes alike).
    fn control(&mut self, id: c_int, value: c_int) -> Result<()> {
        let ctx = self.as_ptr();
        // SAFETY: `ctx` is an initialised context and each control id passed here takes one
        // int-sized argument by value.
        let res = unsafe { vpx_sys::vpx_codec_control_(ctx, id, value) };
        if res != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(Error::Codec {
                operation: "control",
                message: self.error_message(),
            });
        }
        Ok(())
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        let ctx = self.as_ptr();
        // SAFETY: a `Context` exists only for a successfully initialised context, and this is
        // the one place it is destroyed. Nothing can be done about a failure while dropping.
        unsafe {
            vpx_sys::vpx_codec_destroy(ctx);
        }
    }
}

/// Copies a C string libvpx returned (null becomes empty).
///
/// # Safety
/// `ptr` must be null or point to a NUL-terminated string valid for the duration of the call.
unsafe fn c_str(ptr: *const std::ffi::c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null, and NUL-terminated and live by this function's contract.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// Text of a libvpx error code, for failures with no context to ask.
fn err_text(res: vpx_codec_err_t) -> String {
    // SAFETY: `vpx_codec_err_to_string` returns a pointer to a static string for every code.
    unsafe { c_str(vpx_sys::vpx_codec_err_to_string(res)) }
}

/// The encoder configuration as libvpx takes it, kept to change bitrate later.
#[derive(Clone, Copy)]
struct EncoderCfg(vpx_codec_enc_cfg_t);

// SAFETY: the only pointers in the configuration are the two-pass statistics buffers, which
// stay null in one-pass (real-time) mode; the rest is plain numbers.
unsafe impl Send for EncoderCfg {}

/// A real-time VP8 encoder for calls.
///
/// Settings follow libwebrtc's VP8 encoder (constant bitrate, no look-ahead, its quantiser
/// range and rate-control buffer, `VPX_DL_REALTIME`), with a fixed speed and error resilience
/// on: no frame's entropy probabilities carry over to the next, so after a lost frame the
/// receiver is not also left with wrong probabilities. A frame of a new size re-initialises
/// the encoder, whose next frame is then a keyframe.
pub struct Vp8Encoder {
    ctx: Context,
    cfg: EncoderCfg,
    config: Vp8EncoderConfig,
    keyframe_requested: bool,
    last_pts: Option<i64>,
}

impl Vp8Encoder {
    pub fn new(config: Vp8EncoderConfig) -> Result<Self> {
        config.validate()?;
        let (ctx, cfg) = open_encoder(&config)?;
        Ok(Self {
            ctx,
            cfg,
            config,
            keyframe_requested: false,
            last_pts: None,
        })
    }

    /// The current settings (the size is that of the last frame encoded).
    pub fn config(&self) -> &Vp8EncoderConfig {
        &self.config
    }

    /// Makes the next encoded frame a keyframe (answer to RTCP PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Changes the target bitrate from the next frame on (congestion control's estimate).
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<()> {
        if kbps == 0 {
            return Err(Error::InvalidArgument("bitrate must be above zero"));
        }
        let mut cfg = self.cfg;
        cfg.0.rc_target_bitrate = kbps;
        self.apply_cfg(&cfg)?;
        self.config.bitrate_kbps = kbps;
        Ok(())
    }

    /// Changes the nominal frame rate (how long each frame counts for in rate control).
    pub fn set_frame_rate(&mut self, fps: u32) -> Result<()> {
        let mut config = self.config.clone();
        config.frame_rate = fps;
        config.validate()?;
        self.ctx.control(
            vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT as c_int,
            max_intra_bitrate_pct(fps),
        )?;
        self.config = config;
        Ok(())
    }

    /// Quantiser index (0..=127, VP8's bitstream scale) of the last frame encoded: what
    /// libwebrtc adds up as `qpSum`. The default ceiling (max quantiser 56) is index 106.
    pub fn last_qp(&mut self) -> Result<u32> {
        let ctx = self.ctx.as_ptr();
        let mut qp: c_int = 0;
        // SAFETY: `ctx` is an initialised encoder; this control takes one `int *` and writes
        // through it during the call.
        let res = unsafe {
            vpx_sys::vpx_codec_control_(
                ctx,
                vp8e_enc_control_id::VP8E_GET_LAST_QUANTIZER as c_int,
                &mut qp as *mut c_int,
            )
        };
        if res != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(Error::Codec {
                operation: "read quantiser",
                message: self.ctx.error_message(),
            });
        }
        u32::try_from(qp).map_err(|_| Error::Codec {
            operation: "read quantiser",
            message: format!("negative quantiser {qp}"),
        })
    }

    fn apply_cfg(&mut self, cfg: &EncoderCfg) -> Result<()> {
        let ctx = self.ctx.as_ptr();
        // SAFETY: `ctx` is an initialised encoder and `cfg` a configuration libvpx filled in
        // (`vpx_codec_enc_config_default`) with only plain numbers changed since; libvpx copies it.
        let res = unsafe { vpx_sys::vpx_codec_enc_config_set(ctx, &cfg.0) };
        if res != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(Error::Codec {
                operation: "configure encoder",
                message: self.ctx.error_message(),
            });
        }
        self.cfg = *cfg;
        Ok(())
    }

    /// Encodes one frame shown at `pts` (90 kHz ticks, strictly increasing). Returns the
    /// compressed frames produced: one, or none when `drop_frames` let the encoder skip it.
    pub fn encode(&mut self, frame: &I420Frame, pts: i64) -> Result<Vec<EncodedFrame>> {
        if self.last_pts.is_some_and(|last| pts <= last) {
            return Err(Error::InvalidArgument(
                "pts must increase from frame to frame",
            ));
        }
        if frame.width() != self.config.width || frame.height() != self.config.height {
            self.resize(frame.width(), frame.height())?;
        }
        let image = wrap_image(frame);
        let flags = if self.keyframe_requested {
            VPX_EFLAG_FORCE_KF as vpx_sys::vpx_enc_frame_flags_t
        } else {
            0
        };
        let ctx = self.ctx.as_ptr();
        // SAFETY: `ctx` is an initialised encoder whose size matches `image`; `image` points into
        // `frame`'s planes, which outlive the call and which libvpx only reads (it copies the
        // picture into its own buffers before returning, lag being 0).
        let res = unsafe {
            vpx_sys::vpx_codec_encode(
                ctx,
                &image,
                pts,
                self.config.frame_duration(),
                flags,
                c_ulong::from(VPX_DL_REALTIME),
            )
        };
        if res != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(Error::Codec {
                operation: "encode",
                message: self.ctx.error_message(),
            });
        }
        self.last_pts = Some(pts);
        let out = self.drain_packets();
        // A request holds until a keyframe actually comes out, even if this frame was dropped.
        if out.iter().any(|f| f.keyframe) {
            self.keyframe_requested = false;
        }
        Ok(out)
    }

    fn drain_packets(&mut self) -> Vec<EncodedFrame> {
        let ctx = self.ctx.as_ptr();
        let mut out = Vec::new();
        let mut iter: vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: `ctx` is an initialised encoder and `iter` the iterator libvpx asks for,
            // starting null.
            let pkt = unsafe { vpx_sys::vpx_codec_get_cx_data(ctx, &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: `pkt` is non-null and points to a packet valid until the next call on the
            // context; the kind is read as an integer (see the module comment).
            let kind = unsafe { ptr::addr_of!((*pkt).kind).cast::<u32>().read() };
            if kind != vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT as u32 {
                continue;
            }
            // SAFETY: for a frame packet the `frame` member of the union is the one libvpx
            // wrote; `buf` holds `sz` bytes until the next call on the context, and they are
            // copied at once.
            let (data, flags, pts) = unsafe {
                let frame = (*pkt).data.frame;
                let data = if frame.buf.is_null() || frame.sz == 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(frame.buf.cast::<u8>(), frame.sz as usize).to_vec()
                };
                (data, frame.flags, frame.pts)
            };
            out.push(EncodedFrame {
                data,
                keyframe: flags & VPX_FRAME_IS_KEY != 0,
                pts,
                width: self.config.width,
                height: self.config.height,
            });
        }
        out
    }

    /// Starts a fresh encoder at a new size. libvpx can change size in place only within the
    /// first size's bounds; re-opening (as libwebrtc does) works for any size, and the keyframe
    /// it forces is needed anyway, since the receiver must learn the new size.
    fn resize(&mut self, width: u32, height: u32) -> Result<()> {
        check_vp8_size(width, height)?;
        let mut config = self.config.clone();
        config.width = width;
        config.height = height;
        let (ctx, cfg) = open_encoder(&config)?;
        // The old context is dropped (destroyed) here, after the new one is ready.
        self.ctx = ctx;
        self.cfg = cfg;
        self.config = config;
        Ok(())
    }
}

/// libwebrtc's cap on a keyframe's size, as a percentage of an average frame's budget: half the
/// optimal buffer (600 ms) worth of frames, never below 3 frames' worth.
fn max_intra_bitrate_pct(fps: u32) -> c_int {
    let pct = 600 / 2 * fps / 10;
    pct.clamp(300, 100_000) as c_int
}

/// Opens an encoder context with the real-time settings for `config` (already validated).
fn open_encoder(config: &Vp8EncoderConfig) -> Result<(Context, EncoderCfg)> {
    // SAFETY: `vpx_codec_vp8_cx` returns the static interface of the linked library.
    let iface = unsafe { vpx_sys::vpx_codec_vp8_cx() };
    let mut cfg = MaybeUninit::<vpx_codec_enc_cfg_t>::uninit();
    // SAFETY: `cfg` is writable memory of the configuration's size; the struct layout is the
    // one of the bindings generated for the installed libvpx version (the build script checks
    // the version with pkg-config), and usage 0 is the only VP8 usage.
    let res = unsafe { vpx_sys::vpx_codec_enc_config_default(iface, cfg.as_mut_ptr(), 0) };
    if res != vpx_codec_err_t::VPX_CODEC_OK {
        return Err(Error::Codec {
            operation: "default encoder configuration",
            message: err_text(res),
        });
    }
    // SAFETY: `vpx_codec_enc_config_default` succeeded, so it wrote every field with valid
    // values (including the enum fields, whose zero would not all be valid).
    let mut cfg = unsafe { cfg.assume_init() };

    cfg.g_w = config.width;
    cfg.g_h = config.height;
    cfg.g_threads = config.threads;
    cfg.g_timebase.num = 1;
    cfg.g_timebase.den = RTP_VIDEO_CLOCK_RATE as c_int;
    cfg.g_pass = vpx_sys::vpx_enc_pass::VPX_RC_ONE_PASS;
    // No look-ahead: a call cannot wait for future frames.
    cfg.g_lag_in_frames = 0;
    cfg.g_error_resilient = VPX_ERROR_RESILIENT_DEFAULT;
    cfg.rc_end_usage = vpx_sys::vpx_rc_mode::VPX_CBR;
    cfg.rc_target_bitrate = config.bitrate_kbps;
    cfg.rc_dropframe_thresh = if config.drop_frames { 30 } else { 0 };
    cfg.rc_resize_allowed = 0;
    // libwebrtc's VP8 quantiser range and rate-control buffer (in ms).
    cfg.rc_min_quantizer = 2;
    cfg.rc_max_quantizer = 56;
    cfg.rc_undershoot_pct = 100;
    cfg.rc_overshoot_pct = 15;
    cfg.rc_buf_initial_sz = 500;
    cfg.rc_buf_optimal_sz = 600;
    cfg.rc_buf_sz = 1000;
    cfg.kf_mode = vpx_sys::vpx_kf_mode::VPX_KF_AUTO;
    cfg.kf_min_dist = 0;
    cfg.kf_max_dist = config.max_keyframe_interval;

    let mut raw = Context::blank();
    // SAFETY: `raw` is a zeroed, boxed context; `cfg` is a valid configuration that libvpx
    // copies; the ABI version is that of the bindings, which match the installed headers.
    let res = unsafe {
        vpx_sys::vpx_codec_enc_init_ver(&mut *raw, iface, &cfg, 0, VPX_ENCODER_ABI_VERSION as c_int)
    };
    if res != vpx_codec_err_t::VPX_CODEC_OK {
        // libvpx has already torn down a context whose init failed.
        return Err(Error::Codec {
            operation: "open encoder",
            message: err_text(res),
        });
    }
    let mut ctx = Context { raw };
    // A negative value fixes the speed. A positive one makes libvpx adapt the speed to how long
    // frames take to encode, a clock reading that would make the output depend on machine load.
    ctx.control(
        vp8e_enc_control_id::VP8E_SET_CPUUSED as c_int,
        -c_int::from(config.speed),
    )?;
    // Skip coding only blocks that did not change at all (libwebrtc's setting).
    ctx.control(vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD as c_int, 1)?;
    ctx.control(vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY as c_int, 0)?;
    // One token partition: nothing here decodes partitions in parallel.
    ctx.control(vp8e_enc_control_id::VP8E_SET_TOKEN_PARTITIONS as c_int, 0)?;
    // Keep keyframes from bursting far past the frame budget (they would queue in the pacer).
    ctx.control(
        vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT as c_int,
        max_intra_bitrate_pct(config.frame_rate),
    )?;
    Ok((ctx, EncoderCfg(cfg)))
}

/// A libvpx image description pointing into `frame`'s planes (no copy).
fn wrap_image(frame: &I420Frame) -> vpx_image_t {
    let (w, h) = (frame.width(), frame.height());
    let cw = frame.chroma_width();
    // Widths are at most 16383 (checked before the encoder accepts a size), so they fit `c_int`.
    let (y_stride, c_stride) = (w as c_int, cw as c_int);
    vpx_image_t {
        fmt: vpx_img_fmt::VPX_IMG_FMT_I420,
        cs: vpx_sys::vpx_color_space::VPX_CS_BT_601,
        range: vpx_sys::vpx_color_range::VPX_CR_STUDIO_RANGE,
        w,
        h,
        bit_depth: 8,
        d_w: w,
        d_h: h,
        r_w: w,
        r_h: h,
        x_chroma_shift: 1,
        y_chroma_shift: 1,
        // libvpx's struct has `*mut` plane pointers for all uses; the encoder only reads them.
        planes: [
            frame.y().as_ptr().cast_mut(),
            frame.u().as_ptr().cast_mut(),
            frame.v().as_ptr().cast_mut(),
            ptr::null_mut(),
        ],
        stride: [y_stride, c_stride, c_stride, 0],
        bps: 12,
        user_priv: ptr::null_mut(),
        img_data: ptr::null_mut(),
        img_data_owner: 0,
        self_allocd: 0,
        fb_priv: ptr::null_mut(),
    }
}

/// A VP8 decoder that follows the stream's size and never passes on a damaged picture.
///
/// After any undecodable frame it waits for a keyframe, as libwebrtc's decoder does: inter
/// frames that follow a loss refer to a picture the decoder does not have, and would show
/// smeared garbage until the next keyframe. While waiting, [`decode`](Self::decode) returns
/// [`Error::KeyframeRequired`] for inter frames; the caller should send RTCP PLI.
pub struct Vp8Decoder {
    ctx: Context,
    awaiting_keyframe: bool,
}

impl Vp8Decoder {
    pub fn new() -> Result<Self> {
        // SAFETY: `vpx_codec_vp8_dx` returns the static interface of the linked library.
        let iface = unsafe { vpx_sys::vpx_codec_vp8_dx() };
        // Size 0x0: the decoder takes the size from each keyframe.
        let cfg = vpx_codec_dec_cfg_t {
            threads: 1,
            w: 0,
            h: 0,
        };
        let mut raw = Context::blank();
        // SAFETY: `raw` is a zeroed, boxed context; libvpx copies `cfg` into the context during
        // the call; the ABI version is that of the bindings, which match the installed headers.
        let res = unsafe {
            vpx_sys::vpx_codec_dec_init_ver(
                &mut *raw,
                iface,
                &cfg,
                0,
                VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        if res != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(Error::Codec {
                operation: "open decoder",
                message: err_text(res),
            });
        }
        Ok(Self {
            ctx: Context { raw },
            awaiting_keyframe: true,
        })
    }

    /// True until the first keyframe, and again after an undecodable frame.
    pub fn is_awaiting_keyframe(&self) -> bool {
        self.awaiting_keyframe
    }

    /// Drops inter frames until the next keyframe: for a caller that saw a frame go missing
    /// (an RTP sequence gap) that the decoder cannot know about.
    pub fn wait_for_keyframe(&mut self) {
        self.awaiting_keyframe = true;
    }

    /// Decodes one complete VP8 frame (an RTP frame's reassembled payload). Returns the
    /// picture, or `None` for a frame not meant to be shown. Garbage, a truncated frame or an
    /// inter frame while waiting for a keyframe are errors, after which the decoder waits for a
    /// keyframe; the next keyframe decodes normally, at whatever size it carries.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<I420Frame>> {
        match self.decode_inner(data) {
            Ok(picture) => Ok(picture),
            Err(e) => {
                self.awaiting_keyframe = true;
                Err(e)
            }
        }
    }

    fn decode_inner(&mut self, data: &[u8]) -> Result<Option<I420Frame>> {
        if data.is_empty() {
            // libvpx reads a null/empty buffer as "flush", not as a frame.
            return Err(Error::Corrupt("empty frame".into()));
        }
        let len = c_uint::try_from(data.len())
            .map_err(|_| Error::Corrupt("frame larger than 4 GiB".into()))?;
        let keyframe = is_keyframe(data);
        if self.awaiting_keyframe && !keyframe {
            return Err(Error::KeyframeRequired);
        }
        let ctx = self.ctx.as_ptr();
        // SAFETY: `ctx` is an initialised decoder; `data` is a live slice of exactly `len`
        // bytes that libvpx reads during the call only (no frame threading, no fragments).
        let res = unsafe { vpx_sys::vpx_codec_decode(ctx, data.as_ptr(), len, ptr::null_mut(), 0) };
        if res != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(Error::Corrupt(self.ctx.error_message()));
        }
        // libvpx decodes a frame whose last partition is cut short by reading zeros past its
        // end; it reports that only through this flag.
        let mut corrupted: c_int = 0;
        // SAFETY: `ctx` is an initialised decoder that just decoded a frame; this control takes
        // one `int *` and writes through it during the call.
        let res = unsafe {
            vpx_sys::vpx_codec_control_(
                ctx,
                vp8_dec_control_id::VP8D_GET_FRAME_CORRUPTED as c_int,
                &mut corrupted as *mut c_int,
            )
        };
        if res != vpx_codec_err_t::VPX_CODEC_OK || corrupted != 0 {
            return Err(Error::Corrupt("frame data damaged or truncated".into()));
        }
        if keyframe {
            self.awaiting_keyframe = false;
        }
        let mut iter: vpx_codec_iter_t = ptr::null();
        // SAFETY: `ctx` is an initialised decoder and `iter` the iterator libvpx asks for.
        let image = unsafe { vpx_sys::vpx_codec_get_frame(ctx, &mut iter) };
        if image.is_null() {
            return Ok(None);
        }
        // SAFETY: non-null `image` is the decoder's output picture, valid until the next call on
        // the context; `copy_image` copies it out before returning.
        let picture = unsafe { copy_image(image) }?;
        // VP8 yields at most one picture per frame; drain in case a future libvpx differs.
        // SAFETY: as for the first call.
        while !unsafe { vpx_sys::vpx_codec_get_frame(ctx, &mut iter) }.is_null() {}
        Ok(Some(picture))
    }
}

/// Whether a VP8 frame says it is a keyframe (RFC 6386 §9.1: frame-tag bit 0 clear, then the
/// start code 9d 01 2a and the 4 size bytes).
fn is_keyframe(data: &[u8]) -> bool {
    data.len() >= 10 && data[0] & 1 == 0 && data[3..6] == [0x9d, 0x01, 0x2a]
}

/// Copies a decoded libvpx picture into an [`I420Frame`].
///
/// # Safety
/// `image` must point to a picture libvpx's decoder returned, still valid (no call on its
/// context since).
unsafe fn copy_image(image: *const vpx_image_t) -> Result<I420Frame> {
    let bad = |what: &str| Error::Codec {
        operation: "decode",
        message: format!("unexpected decoder output: {what}"),
    };
    // SAFETY: `image` is valid by the contract; the format is read as an integer (see the
    // module comment), the rest are plain integers and pointers.
    let (fmt, width, height, planes, strides) = unsafe {
        (
            ptr::addr_of!((*image).fmt).cast::<u32>().read(),
            (*image).d_w,
            (*image).d_h,
            (*image).planes,
            (*image).stride,
        )
    };
    if fmt != vpx_img_fmt::VPX_IMG_FMT_I420 as u32 {
        return Err(bad("not 8-bit I420"));
    }
    I420Frame::packed_len(width, height)?;
    let (cw, ch) = (width.div_ceil(2) as usize, height.div_ceil(2) as usize);
    let dims = [(width as usize, height as usize), (cw, ch), (cw, ch)];
    let mut views: [(&[u8], usize); 3] = [(&[], 0); 3];
    for (i, &(row_len, rows)) in dims.iter().enumerate() {
        let stride = usize::try_from(strides[i]).map_err(|_| bad("negative stride"))?;
        if planes[i].is_null() || stride < row_len {
            return Err(bad("missing plane or short stride"));
        }
        let len = stride
            .checked_mul(rows - 1)
            .and_then(|n| n.checked_add(row_len))
            .ok_or_else(|| bad("plane larger than memory"))?;
        // SAFETY: libvpx's frame buffers hold `rows` rows `stride` bytes apart for each plane
        // of a `d_w × d_h` picture (plus borders), valid by the contract; the slice only lives
        // until `from_planes` below has copied it.
        views[i] = (
            unsafe { std::slice::from_raw_parts(planes[i], len) },
            stride,
        );
    }
    I420Frame::from_planes(width, height, views[0], views[1], views[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_tag_is_read_from_the_header() {
        let mut key = [0u8; 10];
        key[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        assert!(is_keyframe(&key));
        key[0] = 1; // inter frame
        assert!(!is_keyframe(&key));
        key[0] = 0;
        key[4] = 0; // broken start code
        assert!(!is_keyframe(&key));
        assert!(!is_keyframe(&[0, 0, 0, 0x9d, 0x01, 0x2a]));
    }

    #[test]
    fn bad_settings_are_refused_before_libvpx_sees_them() {
        let good = Vp8EncoderConfig::new(320, 240, 300);
        for bad in [
            Vp8EncoderConfig {
                bitrate_kbps: 0,
                ..good.clone()
            },
            Vp8EncoderConfig {
                width: 16_384,
                ..good.clone()
            },
            Vp8EncoderConfig {
                speed: 17,
                ..good.clone()
            },
            Vp8EncoderConfig {
                frame_rate: 0,
                ..good.clone()
            },
        ] {
            assert!(Vp8Encoder::new(bad).is_err());
        }
        let mut encoder = Vp8Encoder::new(good).unwrap();
        assert!(matches!(
            encoder.set_bitrate(0),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn pts_must_increase() {
        let mut encoder = Vp8Encoder::new(Vp8EncoderConfig::new(64, 64, 100)).unwrap();
        let frame = I420Frame::new(64, 64).unwrap();
        encoder.encode(&frame, 3000).unwrap();
        assert!(matches!(
            encoder.encode(&frame, 3000),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn types_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Vp8Encoder>();
        assert_send::<Vp8Decoder>();
    }
}
