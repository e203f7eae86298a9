"""Encoder choice and encoder options: the spec's codec, preset and rate control → FFmpeg output options. Pure.

CPU encoders (Debian's FFmpeg 5.1 has them all): libx264, libx265, libvpx-vp9, libsvtav1. NVIDIA: h264_nvenc and
hevc_nvenc; FFmpeg 5.1 has no av1_nvenc and NVENC never did VP9, so those codecs on `nvidia` are Unsupported,
and `auto` picks the CPU for them.
"""

from __future__ import annotations

from typing import Literal

from videojob.api.conditions import Reason
from videojob.api.models import AudioCodec, AudioOutput, Container, Preset, VideoCodec, VideoOutput
from videojob.errors import TranscodeError, Unsupported

ResolvedHardware = Literal["cpu", "nvidia"]

CPU_ENCODERS = {
    VideoCodec.H264: "libx264",
    VideoCodec.H265: "libx265",
    VideoCodec.VP9: "libvpx-vp9",
    VideoCodec.AV1: "libsvtav1",
}
NVENC_ENCODERS = {
    VideoCodec.H264: "h264_nvenc",
    VideoCodec.H265: "hevc_nvenc",
}
AUDIO_ENCODERS = {
    AudioCodec.AAC: "aac",
    AudioCodec.MP3: "libmp3lame",
    AudioCodec.OPUS: "libopus",
}
MUXERS = {
    Container.MP4: "mp4",
    Container.MOV: "mov",
    Container.MKV: "matroska",
    Container.WEBM: "webm",
}
EXTENSIONS = {Container.MP4: "mp4", Container.MOV: "mov", Container.MKV: "mkv", Container.WEBM: "webm"}
CONTENT_TYPES = {
    Container.MP4: "video/mp4",
    Container.MOV: "video/quicktime",
    Container.MKV: "video/x-matroska",
    Container.WEBM: "video/webm",
}

_PRESETS = list(Preset)
# NVENC's p1 (fastest) .. p7 (best); its default p4 is "medium".
NVENC_PRESETS = dict(zip(_PRESETS, ["p1", "p1", "p2", "p3", "p3", "p4", "p5", "p6", "p7"], strict=True))
# SVT-AV1: 0 (best) .. 13 (fastest); FFmpeg's default (-1) lets the library choose 10.
SVTAV1_PRESETS = dict(zip(_PRESETS, ["12", "11", "10", "9", "8", "7", "5", "4", "2"], strict=True))
# libvpx-vp9: (deadline, cpu-used). "realtime" with high cpu-used is the only fast mode VP9 has.
VP9_PRESETS = dict(
    zip(
        _PRESETS,
        [
            ("realtime", "8"),
            ("realtime", "7"),
            ("good", "5"),
            ("good", "4"),
            ("good", "3"),
            ("good", "2"),
            ("good", "1"),
            ("good", "0"),
            ("best", "0"),
        ],
        strict=True,
    )
)
VP9_DEFAULT_CRF = 32  # libvpx otherwise falls back to a 256 kbit/s target bitrate
OPUS_SAMPLE_RATES = (48000, 24000, 16000, 12000, 8000)


def resolve_hardware(requested: str, codec: VideoCodec | str) -> ResolvedHardware:
    """`cpu`/`nvidia`/`auto` → the hardware that encodes `codec`. `nvidia` with a codec NVENC cannot do is
    Unsupported; `auto` takes NVENC when it can do the codec (the operator only says auto when a GPU is there)."""
    codec = VideoCodec(codec)
    if requested == "cpu" or codec == VideoCodec.COPY:
        return "cpu"
    if requested == "nvidia":
        if codec not in NVENC_ENCODERS:
            raise Unsupported(
                f"video codec {codec.value} cannot be encoded with NVENC (it does h264 and h265); "
                "use hardware cpu or auto",
                reason=Reason.CODEC_NOT_SUPPORTED_BY_NVENC,
            )
        return "nvidia"
    if requested == "auto":
        return "nvidia" if codec in NVENC_ENCODERS else "cpu"
    raise ValueError(f"unknown hardware {requested!r}")


def fallback_hardware(requested: str | None, error: TranscodeError) -> ResolvedHardware | None:
    """The hardware to encode with again after `error`, or None to fail with it.

    Only `auto` falls back, and only when NVENC itself could not start (no GPU, no encoder engine, no driver):
    the user asked for "a GPU when one is free", so CPU encoding still does the job. An explicit `nvidia` keeps
    the clear NvencUnavailable failure; any other error would fail on CPU as well."""
    if requested == "auto" and isinstance(error, Unsupported) and error.reason == Reason.NVENC_UNAVAILABLE:
        return "cpu"
    return None


def video_encoder(codec: VideoCodec | str, hardware: ResolvedHardware) -> str:
    codec = VideoCodec(codec)
    if codec == VideoCodec.COPY:
        return "copy"
    table = NVENC_ENCODERS if hardware == "nvidia" else CPU_ENCODERS
    if codec not in table:
        raise Unsupported(f"no {hardware} encoder for {codec.value}", reason=Reason.CODEC_NOT_SUPPORTED_BY_NVENC)
    return table[codec]


def video_options(video: VideoOutput, hardware: ResolvedHardware, container: Container | str) -> list[str]:
    """`-c:v ENCODER` and its preset / rate-control options."""
    encoder = video_encoder(video.codec, hardware)
    args = ["-c:v", encoder]
    if encoder == "copy":
        return args
    preset = Preset(video.preset)
    if encoder == "libx264":
        args += ["-preset", preset.value]
        if video.crf is not None:
            args += ["-crf", str(video.crf)]
    elif encoder == "libx265":
        args += ["-preset", preset.value, "-x265-params", "log-level=error"]
        if video.crf is not None:
            args += ["-crf", str(video.crf)]
    elif encoder == "libvpx-vp9":
        deadline, cpu_used = VP9_PRESETS[preset]
        args += ["-deadline", deadline, "-cpu-used", cpu_used, "-row-mt", "1"]
        if video.bitrate is None:  # constant quality needs an explicit zero target bitrate in libvpx
            args += ["-crf", str(video.crf if video.crf is not None else VP9_DEFAULT_CRF), "-b:v", "0"]
    elif encoder == "libsvtav1":
        args += ["-preset", SVTAV1_PRESETS[preset]]
        if video.crf is not None:
            args += ["-crf", str(video.crf)]
    elif encoder in ("h264_nvenc", "hevc_nvenc"):
        args += ["-preset", NVENC_PRESETS[preset]]
        if video.crf is not None:  # NVENC's constant quality: VBR with a quality target and no bitrate cap
            args += ["-rc", "vbr", "-cq", str(min(video.crf, 51)), "-b:v", "0"]
    if video.bitrate is not None:
        args += ["-b:v", video.bitrate]
    if encoder in ("libx265", "hevc_nvenc") and Container(container) in (Container.MP4, Container.MOV):
        args += ["-tag:v", "hvc1"]  # the tag Apple players require for HEVC in MP4/MOV
    return args


def audio_options(audio: AudioOutput) -> list[str]:
    codec = AudioCodec(audio.codec)
    if codec == AudioCodec.COPY:
        return ["-c:a", "copy"]
    args = ["-c:a", AUDIO_ENCODERS[codec]]
    if audio.bitrate is not None:
        args += ["-b:a", audio.bitrate]
    if audio.channels is not None:
        args += ["-ac", str(audio.channels)]
    sample_rate = audio.sample_rate
    if codec == AudioCodec.OPUS and (sample_rate is None or sample_rate not in OPUS_SAMPLE_RATES):
        sample_rate = 48000  # the models refuse other rates for opus; unset means Opus's native rate
    if sample_rate is not None:
        args += ["-ar", str(sample_rate)]
    return args


def muxer_options(container: Container | str, faststart: bool = True) -> list[str]:
    """`-f` and, for MP4/MOV, `+faststart` (the index first: players can start before the whole file arrives).
    The planner asks for no faststart: the runner moves the index itself while uploading (`mp4`)."""
    container = Container(container)
    args = ["-f", MUXERS[container]]
    if faststart and container in (Container.MP4, Container.MOV):
        args += ["-movflags", "+faststart"]
    return args
