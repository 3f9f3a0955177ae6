"""Protocol v2, in three parts: the frames on the wire (layout, CRC, encoder), the decoder, the board's clock.

`from harduino.protocol import ...` reaches all of it; docs/protocol.md is the contract.
"""

from .clock import Clock, Unwrapped
from .decoder import DecodedChunk, Decoder, DecoderStats
from .frames import (COMMANDS, ERROR_BAD_COMMAND, ERROR_BAD_RATE, ERROR_FRAME_LEN, ERROR_MODEL_RATE, ERROR_NO_MODEL,
                     ERROR_SENSOR_MISSING, FRAME_LEN, GRAVITY, INFO_FRAME_LEN, MAX_FRAME_LEN, MODEL_FRAME_LEN,
                     PREDICTION_FRAME_LEN, PROTOCOL_VERSION, SAMPLE_DTYPE, SAMPLE_FRAME_LEN, SYNC, TYPE_ERROR,
                     TYPE_INFO, TYPE_MODEL, TYPE_PREDICTION, TYPE_SAMPLE, BoardInfo, BoardModelInfo, BoardPrediction,
                     command, crc16, crc16_rows, decode_error, decode_info, decode_model, decode_prediction,
                     encode_error, encode_info, encode_model, encode_prediction, encode_samples, info_is_plausible,
                     sample_crc_residue)

__all__ = [
    "COMMANDS", "ERROR_BAD_COMMAND", "ERROR_BAD_RATE", "ERROR_FRAME_LEN", "ERROR_MODEL_RATE", "ERROR_NO_MODEL",
    "ERROR_SENSOR_MISSING", "FRAME_LEN", "GRAVITY", "INFO_FRAME_LEN", "MAX_FRAME_LEN", "MODEL_FRAME_LEN",
    "PREDICTION_FRAME_LEN", "PROTOCOL_VERSION", "SAMPLE_DTYPE", "SAMPLE_FRAME_LEN", "SYNC", "TYPE_ERROR",
    "TYPE_INFO", "TYPE_MODEL", "TYPE_PREDICTION", "TYPE_SAMPLE", "BoardInfo", "BoardModelInfo", "BoardPrediction",
    "Clock", "DecodedChunk", "Decoder", "DecoderStats", "Unwrapped", "command", "crc16", "crc16_rows",
    "decode_error", "decode_info", "decode_model", "decode_prediction", "encode_error", "encode_info",
    "encode_model", "encode_prediction", "encode_samples", "info_is_plausible", "sample_crc_residue",
]
