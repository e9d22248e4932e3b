#!/usr/bin/env python3
"""Regenerates the seed corpora in fuzz/corpus/ (committed; rerun only when formats change).

Frames follow docs/PROTOCOL.md / src/fabric/src/frame.cpp: a 9-byte big-endian header
(u24 length, u8 type, u8 flags, u32 stream id with the top bit reserved) and the payload.
Session seeds use the op encoding of fuzz/fuzz_session.cpp (see `run_op` there).
"""
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0x52415046

(HELLO, AUTH, SESSION_READY, OPEN_STREAM, DATA, ACK, PING, PONG, ROUTE_UPDATE, STREAM_CREDIT,
 NODE_PRESSURE, CLOSE_STREAM, RESET_STREAM, GOAWAY) = range(1, 15)


def frame(ftype, sid, payload, flags=0):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, sid) + payload


def str8(s):
    b = s.encode()
    return bytes([len(b)]) + b


def hello(node="node-a", cluster="cluster-1", mfs=256 * 1024):
    return frame(HELLO, 0, struct.pack(">IHHQI", MAGIC, 1, 1, 0, mfs) + bytes(range(16)) +
                 str8(node) + str8(cluster))


def auth():
    return frame(AUTH, 0, bytes([1, 64]) + bytes(64))


def session_ready(mfs=256 * 1024, isw=256 * 1024, sw=64 << 20):
    return frame(SESSION_READY, 0, struct.pack(">HHIIIIIQQ", 1, 0, mfs, isw, sw, 10000, 30000, 0, 0))


def open_stream(sid, cls=3, route=7, service="svc"):
    return frame(OPEN_STREAM, sid, struct.pack(">BBQ", cls, 0, route) + str8(service))


def data(sid, seq, payload):
    return frame(DATA, sid, struct.pack(">Q", seq) + payload)


def u64frame(ftype, sid, v):
    return frame(ftype, sid, struct.pack(">Q", v))


def route_update(sid, route, epoch, lease):
    return frame(ROUTE_UPDATE, sid, struct.pack(">QQH", route, epoch, len(lease)) + lease)


def credit(sid, inc):
    return frame(STREAM_CREDIT, sid, struct.pack(">I", inc))


def pressure(level=1, cpu=500, q=1000, mem=2048):
    return frame(NODE_PRESSURE, 0, struct.pack(">BBHII", level, 0, cpu, q, mem))


def reset(sid, code, reason):
    return frame(RESET_STREAM, sid, struct.pack(">I", code) + str8(reason))


def goaway(last, code, reason, drain=False):
    return frame(GOAWAY, 0, struct.pack(">II", last, code) + str8(reason), 1 if drain else 0)


def frame_seeds():
    m256 = b"\x02"  # fuzz_frame_decoder: first byte 2 -> max frame size 256 KiB
    m16 = b"\x01"   # 16 KiB
    all_types = [
        hello(), auth(), session_ready(), open_stream(1), data(1, 0, b"hello world"),
        u64frame(ACK, 1, 11), u64frame(PING, 0, 0x1122334455667788), u64frame(PONG, 0, 42),
        route_update(0, 9, 3, b"lease-bytes"), credit(1, 65536), pressure(),
        u64frame(CLOSE_STREAM, 1, 11), reset(1, 6, "cancel"), goaway(5, 12, "shutdown", True),
    ]
    seeds = {}
    for f in all_types:
        seeds["type_%02x" % f[3]] = m256 + f
    seeds["stream_all_types"] = m256 + b"".join(all_types)
    seeds["data_16k_limit"] = m16 + data(3, 0, bytes(16 * 1024 - 8))
    seeds["data_split_then_partial"] = m256 + data(1, 0, b"ab") + data(1, 2, b"cd")[:12]
    seeds["reset_nonprintable"] = m256 + reset(5, 1, "\x01bad")
    seeds["err_reserved_bit"] = m256 + frame(PING, 0x80000000, bytes(8))
    seeds["err_unknown_type"] = m256 + frame(0x0F, 0, b"")
    seeds["err_too_large"] = b"\x04" + data(1, 0, bytes(8))  # max frame size 1
    seeds["err_bad_flags"] = m256 + frame(PING, 0, bytes(8), flags=0x80)
    seeds["err_stream_level"] = m256 + frame(ACK, 3, b"\x00\x01")
    return seeds


# --- fuzz_session op encoding -------------------------------------------------------------
def raw(b):  # op 0: raw peer bytes
    if len(b) < 255:
        return bytes([0, len(b)]) + b
    return bytes([0, 255]) + struct.pack(">H", len(b)) + b


def st(kind, sel=0, skew=0, extra=b""):  # op 2: structured peer frame
    return bytes([2, kind, sel, skew]) + extra


def canned(i):
    return bytes([4, i])


def produce(cap_idx=10):
    return bytes([5, cap_idx])


def tick(b):
    return bytes([6, b])


def read(idsel, size=200):
    return bytes([7, idsel, size])


def write(idsel, lenb):
    return bytes([8, idsel, lenb])


def session_seeds():
    # Stream ids as the harness lists them in established mode: [local reliable,
    # local droppable, peer bulk] -> selectors 0, 1, 2.
    peer = 2
    seeds = {}
    seeds["est_data_read_credit"] = b"\x00" + (
        st(0, peer, 0, b"\x10\x00") + read(peer, 255) + produce() +
        st(0, peer, 0, b"\x20\x00") + st(0, peer, 0, b"\x20\x00") + read(peer, 255) + read(peer, 255) +
        produce() + st(3, 0, 0, b"\x10\x00") + st(3, 1, 0, b"\x10\x00") + st(4, 0) +
        write(0, 40) + produce() + st(4, 0) + st(5, peer) + read(peer) + bytes([10, 0]) + produce())
    seeds["est_flow_control_overrun"] = b"\x00" + b"".join(st(1, peer, 0, b"\x3f\x3f") for _ in range(8)) + produce()
    seeds["est_open_write_close"] = b"\x00" + (
        bytes([9, 0, 1]) + write(3, 100) + produce(8) + produce(9) + produce(4) + produce() +
        st(7, 0, 0, b"\x02") + st(0, 4, 0, b"\x01\x00") + st(5, 4) + read(4) + read(4) +
        bytes([10, 3]) + produce() + bytes([12, 3]) + produce())
    seeds["est_ping_pong_pressure_route"] = b"\x00" + (
        st(8, 0, 0, struct.pack(">Q", 99)) + produce() + bytes([13, 1]) + produce() + st(9, 1) +
        st(11, 0, 0, b"\x02\x01\x00" + bytes(8)) + st(12, 0, 0, b"\x05\x06\x04") +
        bytes([13, 6, 1, 2, 3]) + bytes([13, 3, 0, 100, 0, 0, 1, 0]) + tick(0x45) + produce())
    seeds["est_goaway_drain"] = b"\x00" + (
        st(10, 1, 1, b"\x0c") + produce() + read(peer) + st(5, peer) + read(peer) + bytes([10, 0, 10, 1]) +
        produce() + produce())
    seeds["est_reset_and_idle"] = b"\x00" + (
        st(6, 0, 0, b"\x06") + st(6, peer, 0, b"\x01") + bytes([11, 1, 6]) + produce() +
        tick(0x82) + tick(0x82) + tick(0x83) + produce() + bytes([14, 0xee]))
    seeds["est_raw_frames"] = b"\x00" + (
        raw(data(1, 5, b"more data") + u64frame(PING, 0, 7)) + produce() +
        raw(open_stream(3, 1) + data(3, 0, b"x" * 100)) + read(0x83) + produce() +
        raw(data(3, 100, b"split")[:10]) + raw(data(3, 100, b"split")[10:]) + read(0x83))
    seeds["est_initiator_defaults"] = b"\x06" + (
        st(0, peer, 0, b"\xff\x3f") + read(peer, 255) + write(0, 255) + produce(11) + produce(11) +
        st(3, 1, 200, b"\x00\x10\x00\x00") + st(3, 0, 0, b"\x10\x00") + produce(11) +
        bytes([15, 4]) + st(0, peer, 0, b"\x01\x01") + st(0, peer, 0, b"\x01\x01") + st(0, peer, 0, b"\x01\x01") +
        st(0, peer, 0, b"\x01\x01"))
    seeds["est_bad_sequence_and_ack"] = b"\x00" + (
        st(0, peer, 210, b"\x01\x00") + st(4, 0, 230) + st(5, peer, 255) + produce() +
        st(7, 0x85, 210, b"\x01") + produce())
    # Handshake mode: the honest peer's canned HELLO, AUTH, SESSION_READY (+ PING ...).
    seeds["hs_canned_in_order"] = b"\x01" + (
        produce() + canned(0) + canned(1) + produce() + canned(2) + produce() + canned(3) +
        produce() + st(7, 0, 0, b"\x03") + st(0, 0x81, 0, b"\x01\x00") + read(0x81) + produce())
    seeds["hs_initiator_canned"] = b"\x03" + (
        canned(0) + canned(1) + canned(2) + canned(3) + canned(4) + produce() + bytes([9, 5, 0]) +
        write(0, 10) + produce())
    seeds["hs_out_of_order"] = b"\x01" + canned(1) + produce()
    seeds["hs_data_before_ready"] = b"\x01" + canned(0) + st(0, 0x81, 0, b"\x00\x10") + produce()
    seeds["hs_forged_ready"] = b"\x05" + (
        canned(0) + canned(1) + st(13, 0, 0, b"\x00\x00\x40\x00\x00\x00\x10\x00\x00\x00\x10\x00") +
        produce() + write(0x81, 3))
    seeds["hs_timeout"] = b"\x01" + canned(0) + tick(0x83) + tick(0x83) + produce()
    seeds["hs_raw_hello"] = b"\x01" + raw(hello("node-a", "cluster-1", 16384)) + raw(auth()) + produce()
    seeds["hs_garbage"] = b"\x01" + raw(b"\x00\x00\x05\x0f\x00\x00\x00\x00\x00junk") + produce()
    return seeds


def write_dir(path, seeds):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    for name, blob in sorted(seeds.items()):
        with open(os.path.join(path, name), "wb") as f:
            f.write(blob)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    write_dir(os.path.join(root, "fuzz_frame_decoder"), frame_seeds())
    write_dir(os.path.join(root, "fuzz_session"), session_seeds())


if __name__ == "__main__":
    main()
