#!/usr/bin/env python3
"""A client of the learner's wire protocol, written from docs/wire-format.md alone: the decoder below is the one
that document shows, and the encoder its mirror image. `WireClientTests` runs it against a live learner.

    scripts/wire_client.py handshake --host 127.0.0.1 --port BASE+2 --config-hash HASH [--index I] [--key-file F]

`handshake` says hello, checks the welcome (base weights, normalisation, meta), fetches the current weights and sends
a heartbeat, then prints one JSON object describing what came back. Needs numpy and lz4 (pip), and pynng or
nanomsg-python is not needed: it speaks nanomsg's REQ/REP over TCP itself (the SP handshake and 8-byte length
prefix, with the REQ request id).
"""
import argparse
import hashlib
import hmac
import json
import socket
import struct

import lz4.frame
import numpy as np

HEADER = struct.Struct("<4sHHIIQIIQQQ8s32s")  # 96 bytes
DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<i4"), 3: np.dtype("u1"), 4: np.dtype("<i8")}
KINDS = {1: "segment", 2: "weightsNotice", 3: "hello", 4: "welcome", 5: "weightsRequest",
         6: "weights", 7: "heartbeat", 8: "heartbeatReply", 9: "shutdown", 10: "refusal"}
MAX_MESSAGE_BYTES, MAX_TENSORS, MAX_DIMENSIONS, MAX_NAME_BYTES = 64 << 20, 64, 6, 128
LZ4_FRAME, AUTHENTICATED, SHUFFLED = 0x1, 0x2, 0x1
TAG = slice(64, 96)


class WireError(Exception):
    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def message_tag(message: bytes, key: bytes) -> bytes:
    """HMAC-SHA256 over the message with its 32 tag bytes zeroed."""
    return hmac.new(key, message[:64] + bytes(32) + message[96:], hashlib.sha256).digest()


def sign(message: bytes, key: bytes) -> bytes:
    """Authenticates an encoded message: sets flag bit 1 and writes the tag."""
    signed = bytearray(message)
    struct.pack_into("<I", signed, 8, struct.unpack_from("<I", signed, 8)[0] | AUTHENTICATED)
    signed[TAG] = message_tag(bytes(signed), key)
    return bytes(signed)


def decode(message: bytes, key: bytes | None = None) -> dict:
    if len(message) < 4 or message[:4] != b"DPPO":
        raise WireError("truncated" if len(message) < 4 else "bad_magic")
    if len(message) < 6:
        raise WireError("truncated", "format version")
    (version,) = struct.unpack_from("<H", message, 4)
    if version != 1:
        raise WireError("unsupported_version", str(version))
    if len(message) < HEADER.size:
        raise WireError("truncated", "header")
    (_, _, kind, flags, reserved0, policy_version, actor_index, reserved1,
     sequence, raw_length, encoded_length, reserved2, tag) = HEADER.unpack_from(message)
    if kind not in KINDS:
        raise WireError("unknown_kind", str(kind))
    if flags & ~(LZ4_FRAME | AUTHENTICATED) or reserved0 or reserved1 or any(reserved2):
        raise WireError("malformed_header", "unknown flags or non-zero reserved bytes")
    if not flags & AUTHENTICATED and any(tag):
        raise WireError("malformed_header", "non-zero tag without the authenticated flag")
    if raw_length > MAX_MESSAGE_BYTES:
        raise WireError("too_large", f"raw payload of {raw_length} bytes")
    arrived = len(message) - HEADER.size
    if encoded_length != arrived:
        raise WireError("truncated" if encoded_length > arrived else "length_mismatch",
                        f"header declares {encoded_length} payload bytes, {arrived} arrived")
    if raw_length < 4:
        raise WireError("truncated", "tensor count")
    if key is None and flags & AUTHENTICATED:
        raise WireError("unexpected_tag", "unexpected authentication; this run has no cluster key")
    if key is not None and not flags & AUTHENTICATED:
        raise WireError("missing_tag")
    if key is not None and not hmac.compare_digest(tag, message_tag(message, key)):
        raise WireError("bad_tag")  # before anything is decompressed or parsed
    encoded = message[HEADER.size:]
    if flags & LZ4_FRAME:
        payload = decompress_exactly(encoded, raw_length)
    elif raw_length != encoded_length:
        raise WireError("length_mismatch", "uncompressed payload with raw != encoded length")
    else:
        payload = encoded
    return {"kind": KINDS[kind], "policy_version": policy_version, "actor_index": actor_index,
            "sequence": sequence, "tensors": parse_tensors(memoryview(payload))}


def decompress_exactly(frame: bytes, raw_length: int) -> bytes:
    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        payload = decompressor.decompress(frame, max_length=raw_length)  # never more than the limit
    except RuntimeError as error:
        raise WireError("decompression_failed", str(error)) from None
    if not decompressor.eof:  # the frame ends early, or expands past the raw length
        raise WireError("truncated" if decompressor.needs_input else "length_mismatch", "LZ4 frame")
    if decompressor.unused_data or len(payload) != raw_length:
        raise WireError("length_mismatch", "frame does not fill exactly the encoded and raw lengths")
    return payload


def parse_tensors(payload: memoryview) -> dict:
    position = 0

    def take(size, what):
        nonlocal position
        if size > len(payload) - position:
            raise WireError("truncated", what)
        chunk = payload[position:position + size]
        position += size
        return chunk

    (count,) = struct.unpack("<I", take(4, "tensor count"))
    if count > MAX_TENSORS:
        raise WireError("too_large", f"{count} tensors")
    entries, data_bytes = [], 0
    for index in range(count):
        # The order of the Swift decoder (TensorTableReader.readEntry), check by check, so both name the same reason.
        (name_length,) = struct.unpack("<H", take(2, f"name length of tensor {index}"))
        if name_length > MAX_NAME_BYTES:
            raise WireError("too_large", f"name of tensor {index}")
        try:
            name = bytes(take(name_length, f"name of tensor {index}")).decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("malformed_table", f"name of tensor {index} is not UTF-8") from None
        (code,) = struct.unpack("<B", take(1, f"dtype of {name!r}"))
        if code not in DTYPES:
            raise WireError("malformed_table", f"dtype code {code} of {name!r}")
        (tensor_flags,) = struct.unpack("<B", take(1, f"flags of {name!r}"))
        if tensor_flags & ~SHUFFLED:
            raise WireError("malformed_table", f"flags of {name!r}")
        (ndim,) = struct.unpack("<B", take(1, f"dimension count of {name!r}"))
        if ndim > MAX_DIMENSIONS:
            raise WireError("too_large", f"{ndim} dimensions in {name!r}")
        (pad,) = struct.unpack("<B", take(1, f"pad of {name!r}"))
        if pad:
            raise WireError("malformed_table", f"pad byte of {name!r}")
        shape = struct.unpack(f"<{ndim}I", take(4 * ndim, f"dimensions of {name!r}"))
        dtype = DTYPES[code]
        size = dtype.itemsize
        for dimension in shape:
            size *= dimension  # Python integers do not overflow ...
        if size >= 1 << 63:  # ... but other languages' do: the Swift decoder rejects this
            raise WireError("malformed_table", f"size of {name!r} overflows")
        (declared,) = struct.unpack("<Q", take(8, f"data length of {name!r}"))
        if declared != size:
            raise WireError("length_mismatch", f"{name!r} declares {declared} bytes, needs {size}")
        if any(name == entry[0] for entry in entries):
            raise WireError("malformed_table", f"duplicate name {name!r}")
        data_bytes += size
        if data_bytes > len(payload) - position:
            raise WireError("truncated", f"the data of {name!r} (the table declares more data than the payload holds)")
        entries.append((name, dtype, bool(tensor_flags & SHUFFLED), shape, size))
    if data_bytes != len(payload) - position:
        raise WireError("length_mismatch", "bytes follow the tensor data in the payload")
    tensors = {}
    for name, dtype, shuffled, shape, size in entries:
        data = np.frombuffer(take(size, f"data of {name!r}"), dtype=np.uint8)
        if shuffled and size:  # planes of byte 0, byte 1, ... back to whole elements (an empty tensor has none)
            data = np.ascontiguousarray(data.reshape(dtype.itemsize, -1).T)
        tensors[name] = data.view(dtype).reshape(shape)
    return tensors


NAMES = {name: code for code, name in KINDS.items()}
CODES = {np.dtype("<f4"): 1, np.dtype("<i4"): 2, np.dtype("u1"): 3, np.dtype("<i8"): 4}


def encode(kind: str, tensors: dict, policy_version=0, actor_index=0, sequence=0, key: bytes | None = None) -> bytes:
    """The mirror of `decode`: tensor table, data, LZ4 when it helps, header, and the tag with a key."""
    table, data = [struct.pack("<I", len(tensors))], []
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        encoded_name = name.encode("utf-8")
        table.append(struct.pack("<H", len(encoded_name)) + encoded_name)
        table.append(struct.pack("<BBBB", CODES[np.dtype(dtype)], 0, array.ndim, 0))
        table.append(struct.pack(f"<{array.ndim}I", *array.shape))
        raw = array.astype(dtype, copy=False).tobytes()
        table.append(struct.pack("<Q", len(raw)))
        data.append(raw)
    payload = b"".join(table + data)
    flags, encoded = 0, payload
    if len(payload) > 64:
        compressed = lz4.frame.compress(payload, store_size=True)
        if len(compressed) < len(payload):
            flags, encoded = LZ4_FRAME, compressed
    message = HEADER.pack(b"DPPO", 1, NAMES[kind], flags, 0, policy_version, actor_index, 0, sequence,
                          len(payload), len(encoded), bytes(8), bytes(32)) + encoded
    return sign(message, key) if key is not None else message


def meta(values: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(values).encode("utf-8"), dtype=np.uint8)


def read_meta(message: dict) -> dict:
    return json.loads(bytes(message["tensors"]["meta"]).decode("utf-8"))


class Request:
    """nanomsg's REQ socket over TCP: the SP header (protocol 0x30 REQ, peer 0x31 REP), then each message as a
    big-endian u64 length and the body, whose first 4 bytes are the request id (top bit set)."""

    def __init__(self, host: str, port: int, timeout: float = 10):
        self.socket = socket.create_connection((host, port), timeout=timeout)
        self.socket.sendall(b"\x00SP\x00" + struct.pack(">H", 0x30) + b"\x00\x00")
        peer = self.receive_exactly(8)
        if peer[:4] != b"\x00SP\x00" or struct.unpack(">H", peer[4:6])[0] != 0x31:
            raise RuntimeError(f"not a nanomsg REP socket: {peer!r}")
        self.request_id = 0x8000_0000 | 7

    def receive_exactly(self, count: int) -> bytes:
        chunks = b""
        while len(chunks) < count:
            chunk = self.socket.recv(count - len(chunks))
            if not chunk:
                raise RuntimeError("the learner closed the connection")
            chunks += chunk
        return chunks

    def exchange(self, body: bytes) -> bytes:
        self.request_id = 0x8000_0000 | ((self.request_id + 1) & 0x7FFF_FFFF)
        framed = struct.pack(">I", self.request_id) + body
        self.socket.sendall(struct.pack(">Q", len(framed)) + framed)
        (length,) = struct.unpack(">Q", self.receive_exactly(8))
        reply = self.receive_exactly(length)
        if struct.unpack(">I", reply[:4])[0] != self.request_id:
            raise RuntimeError("a reply to another request")
        return reply[4:]


def handshake(arguments) -> dict:
    key = bytes.fromhex(open(arguments.key_file).read().strip()) if arguments.key_file else None
    connection = Request(arguments.host, arguments.port)
    hello = {"config_hash": str(arguments.config_hash)}
    if arguments.index is not None:
        hello["requested_index"] = arguments.index
    welcome = decode(connection.exchange(encode("hello", {"meta": meta(hello)}, key=key)), key)
    if welcome["kind"] != "welcome":
        raise RuntimeError(f"hello answered with {welcome['kind']}: {read_meta(welcome) if 'meta' in welcome['tensors'] else ''}")
    details = read_meta(welcome)
    index, version = welcome["actor_index"], welcome["policy_version"]
    base = welcome["tensors"]["base"]
    normalization = {name.split(".", 1)[1]: welcome["tensors"][name].tolist()
                     for name in welcome["tensors"] if name.startswith("normalization.")}
    weights = decode(connection.exchange(encode("weightsRequest", {}, version, index, 0, key)), key)
    if weights["kind"] != "weights":
        raise RuntimeError(f"weightsRequest answered with {weights['kind']}")
    fine_tuned = weights["tensors"]["fine_tuned"]
    beat = {"env_steps": 0, "episodes": 0, "env_steps_per_second": 0.0}
    reply = decode(connection.exchange(encode("heartbeat", {"meta": meta(beat)}, 0, index, 0, key)), key)
    return {"welcome": {"actor_index": index, "policy_version": version, "seed": details["seed"],
                        "chain_transport": details["chain_transport"], "base_parameters": int(base.size),
                        "base_finite": bool(np.isfinite(base).all()), "normalization": sorted(normalization)},
            "weights": {"policy_version": weights["policy_version"], "parameters": int(fine_tuned.size),
                        "finite": bool(np.isfinite(fine_tuned).all())},
            "heartbeat_reply": reply["kind"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    shake = commands.add_parser("handshake", help="hello, weights and a heartbeat against a live learner")
    shake.add_argument("--host", default="127.0.0.1")
    shake.add_argument("--port", type=int, required=True, help="the control port (cluster.base_port + 2)")
    shake.add_argument("--config-hash", type=int, required=True, help="the run's config hash (docs/wire-format.md)")
    shake.add_argument("--index", type=int)
    shake.add_argument("--key-file")
    reasons = commands.add_parser("reasons", help="decode each file and print its WireError reason, or ok")
    reasons.add_argument("files", nargs="+")
    reasons.add_argument("--key-file")
    arguments = parser.parse_args()
    if arguments.command == "reasons":
        key = bytes.fromhex(open(arguments.key_file).read().strip()) if arguments.key_file else None
        for path in arguments.files:
            try:
                decode(open(path, "rb").read(), key)
                print("ok")
            except WireError as error:
                print(error.reason)
        return
    print(json.dumps(handshake(arguments), sort_keys=True))


if __name__ == "__main__":
    main()
