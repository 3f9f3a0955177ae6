// Protocol v2, the board's side: the frames it sends (docs/protocol.md is the contract).
//
// Every frame is  sync A5 5A | type | payload | CRC-16/XMODEM (u16 LE) over type + payload,
// all integers little-endian. Nothing here knows which board or sensor it runs on.
#ifndef HARDUINO_PROTOCOL_H
#define HARDUINO_PROTOCOL_H

#include <Arduino.h>

#define HARDUINO_PROTOCOL_VERSION 2
#define HARDUINO_FIRMWARE_MAJOR 1
#define HARDUINO_FIRMWARE_MINOR 2
#define HARDUINO_FIRMWARE_PATCH 0

enum FrameType : uint8_t {
  FRAME_SAMPLE = 0x01,
  FRAME_INFO = 0x02,
  FRAME_ERROR = 0x03,
  FRAME_PREDICTION = 0x04,  // from v2
  FRAME_MODEL = 0x05,       // from v2
};

enum ErrorCode : uint8_t {
  ERROR_SENSOR_MISSING = 1,
  ERROR_BAD_COMMAND = 2,
  ERROR_BAD_RATE = 3,
  ERROR_NO_MODEL = 4,    // `predict on` on a firmware built without a model
  ERROR_MODEL_RATE = 5,  // `predict on` at a rate the model was not trained for
};

// What the info frame says about the sensor: its name, full-scale ranges and scale factors.
struct SensorInfo {
  const char *name;        // ASCII, at most 12 characters on the wire
  uint8_t accel_range_g;   // ±g
  uint16_t gyro_range_dps; // ±°/s
  float accel_lsb_per_g;
  float gyro_lsb_per_dps;
};

// One sample: sequence number, board time of the reading (micros()), then
// accel x, y, z and gyro x, y, z in raw counts.
void sendSample(Print &out, uint16_t seq, uint32_t t_us, const int16_t raw[6]);
void sendInfo(Print &out, const SensorInfo &sensor, uint16_t rate_hz);
void sendError(Print &out, ErrorCode code, const char *message);

// What the model frame says about the model built in; names: n_classes strings in flash, `name_stride` apart.
struct ModelInfo {
  const char *id;  // at most 12 characters on the wire
  uint8_t n_classes, window, step, feature_set;
  uint16_t rate_hz;
  const char *names;
  uint8_t name_stride;
};

// One prediction: the window's last sample's seq, the class, a 0..255 score per class (8), cycles spent.
void sendPrediction(Print &out, uint16_t seq, uint8_t cls, uint8_t n_classes, const uint8_t scores[8],
                    uint32_t cycles);
void sendModel(Print &out, const ModelInfo &model);

#endif
