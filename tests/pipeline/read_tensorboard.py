"""Reads what the TensorBoard writer wrote, with TensorBoard's own readers (tests/pipeline/tensorboard_test.ts).

  read_tensorboard.py events <logdir>  -> JSON: per file its records (CRCs checked here) and events
                                          (TensorBoard's loader), then what EventAccumulator shows
                                          for the folder: scalars and images (PNGs decoded here)
  read_tensorboard.py png <file>       -> JSON: the PNG decoded with zlib/struct (chunk CRCs checked)

Exit code 3 when tensorboard cannot be imported.
"""
import json
import os
import struct
import sys
import zlib

try:
    from tensorboard.backend.event_processing import event_accumulator, event_file_loader
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
except ImportError as e:  # the test turns this into an install hint
    print(f"cannot import tensorboard with {sys.executable}: {e}", file=sys.stderr)
    sys.exit(3)

CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def decode_png(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("bad PNG signature")
    pos, chunks, idat = 8, [], b""
    header = None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(ctype + body) != crc:
            raise ValueError(f"CRC mismatch in chunk {ctype!r}")
        chunks.append(ctype.decode())
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    channels = CHANNELS[color]
    raw = zlib.decompress(idat)
    stride = 1 + width * channels
    if len(raw) != stride * height:
        raise ValueError(f"IDAT holds {len(raw)} bytes, expected {stride * height}")
    rows = []
    for y in range(height):
        if raw[y * stride] != 0:
            raise ValueError("only filter type 0 is decoded here")
        rows.append(raw[y * stride + 1 : (y + 1) * stride])
    return {
        "chunks": chunks,
        "width": width,
        "height": height,
        "bitDepth": depth,
        "colorType": color,
        "interlace": interlace,
        "pixels": b"".join(rows).hex(),
    }


def raw_records(path):
    """Record lengths of a TFRecord file, each CRC checked; raises on a bad or truncated record."""
    with open(path, "rb") as f:
        data = f.read()
    pos, lengths = 0, []
    while pos < len(data):
        head = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", head)
        (head_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        if masked_crc32c(head) != head_crc:
            raise ValueError(f"{path}: length CRC mismatch at byte {pos}")
        body = data[pos + 12 : pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        if len(body) != length or masked_crc32c(body) != body_crc:
            raise ValueError(f"{path}: data CRC mismatch at byte {pos}")
        lengths.append(length)
        pos += 16 + length
    return lengths


def describe_file(path):
    events = []
    for ev in event_file_loader.EventFileLoader(path).Load():
        kind = ev.WhichOneof("what")
        item = {"step": ev.step, "wallTime": ev.wall_time, "kind": kind}
        if kind == "file_version":
            item["fileVersion"] = ev.file_version
        elif kind == "session_log":
            item["status"] = ev.session_log.status
        elif kind == "summary":
            item["tags"] = [v.tag for v in ev.summary.value]
        events.append(item)
    return {"name": os.path.basename(path), "records": len(raw_records(path)), "events": events}


def read_events(logdir):
    names = sorted(n for n in os.listdir(logdir) if "tfevents" in n)
    acc = event_accumulator.EventAccumulator(
        logdir, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0}
    )
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]}
    images = {}
    for t in tags["images"]:
        images[t] = []
        for e in acc.Images(t):
            png = decode_png(e.encoded_image_string)
            del png["pixels"]
            images[t].append({"step": e.step, "width": e.width, "height": e.height, "png": png})
    return {
        "files": [describe_file(os.path.join(logdir, n)) for n in names],
        "scalars": scalars,
        "images": images,
    }


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "png":
        with open(path, "rb") as f:
            out = decode_png(f.read())
    else:
        out = read_events(path)
    print(json.dumps(out))
