"""Stage 2, the packets: the packet columns every later stage works on, the compiled pcap/pcapng
reader and its Python face, ``decode``, frame encoding, crafting with scapy and synthetic traffic.

Imports only the topology stage (protocol numbers). Other stages use only the names below;
``_ingest`` is private to this package.
"""

from sgdp._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "packet": ["Packet", "PacketBatch", "Verdict", "VerdictBatch", "Names", "PACKET_COLUMNS", "VERDICTS",
               "VERDICT_CODE", "REASONS", "DIRECTIONS", "STATUS_NAMES", "OK", "NON_IP", "MALFORMED", "ACK", "FIN",
               "SYN", "RST", "TCP_FLAG_LETTERS", "parse_tcp_flags"],
    "ingest": ["CaptureBatch", "CaptureReader", "read_batches", "open_capture", "detail_text", "DEFAULT_BATCH_SIZE",
               "check_captures", "capture_problem", "is_stream", "display_name", "STDIN", "FLAG", "DETAIL",
               "BlockPool", "block_size", "new_columns"],
    "frames": ["LINKTYPE_ETHERNET", "packet_to_frame", "timestamp", "in_time_range", "MAX_TIME_NS", "TIME_RANGE_TEXT"],
    "synth": ["generated_topology", "generated_traffic", "write_pcap", "limits_topology", "BENCH_INSTANCES", "LOCALITIES"],
    "decode": ["decode_rows", "decode_batches", "batch_rows", "format_ts", "DECODE_COLUMNS"],
    "craft": ["craft"],
})
