// Protocol v2 frames, assembled in RAM and handed to the UART in one write.
#include "protocol.h"

#include <string.h>

#if defined(__AVR__)
#include <util/crc16.h>
#define crc_xmodem_update _crc_xmodem_update
#else
// The same CRC-16/XMODEM (polynomial 0x1021, initial 0) for boards without avr-libc.
static uint16_t crc_xmodem_update(uint16_t crc, uint8_t data) {
  crc ^= (uint16_t)data << 8;
  for (uint8_t i = 0; i < 8; i++) crc = (crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1;
  return crc;
}
#endif

namespace {

// Bytes of one frame of at most LEN bytes; the CRC is updated as bytes go in, so no second pass.
template <uint8_t LEN>
class Frame {
 public:
  explicit Frame(FrameType type) : len_(0), crc_(0) {
    buf_[len_++] = 0xA5;
    buf_[len_++] = 0x5A;
    put8(type);
  }
  void put8(uint8_t v) {
    buf_[len_++] = v;
    crc_ = crc_xmodem_update(crc_, v);
  }
  void put16(uint16_t v) {
    put8(v & 0xFF);
    put8(v >> 8);
  }
  void put32(uint32_t v) {
    put16(v & 0xFFFF);
    put16(v >> 16);
  }
  void putFloat(float f) {  // IEEE 754 single, as the host's struct "<f" reads it
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    put32(bits);
  }
  void putText(const char *text, uint8_t width) {  // NUL-padded, cut at width
    uint8_t i = 0;
    for (; i < width && text[i] != '\0'; i++) put8(text[i]);
    for (; i < width; i++) put8(0);
  }
  void putTextP(const char *text, uint8_t width) {  // the same, from flash
    uint8_t i = 0;
    for (char c; i < width && (c = pgm_read_byte(text + i)) != '\0'; i++) put8(c);
    for (; i < width; i++) put8(0);
  }
  void send(Print &out) {
    const uint16_t crc = crc_;
    buf_[len_++] = crc & 0xFF;
    buf_[len_++] = crc >> 8;
    out.write(buf_, len_);
  }

 private:
  uint8_t buf_[LEN];
  uint8_t len_;
  uint16_t crc_;
};

}  // namespace

void sendSample(Print &out, uint16_t seq, uint32_t t_us, const int16_t raw[6]) {
  Frame<23> frame(FRAME_SAMPLE);
  frame.put16(seq);
  frame.put32(t_us);
  for (uint8_t i = 0; i < 6; i++) frame.put16((uint16_t)raw[i]);
  frame.send(out);
}

void sendInfo(Print &out, const SensorInfo &sensor, uint16_t rate_hz) {
  Frame<34> frame(FRAME_INFO);
  frame.put8(HARDUINO_PROTOCOL_VERSION);
  frame.put8(HARDUINO_FIRMWARE_MAJOR);
  frame.put8(HARDUINO_FIRMWARE_MINOR);
  frame.put8(HARDUINO_FIRMWARE_PATCH);
  frame.putText(sensor.name, 12);
  frame.put8(sensor.accel_range_g);
  frame.put16(sensor.gyro_range_dps);
  frame.putFloat(sensor.accel_lsb_per_g);
  frame.putFloat(sensor.gyro_lsb_per_dps);
  frame.put16(rate_hz);
  frame.send(out);
}

void sendError(Print &out, ErrorCode code, const char *message) {
  Frame<22> frame(FRAME_ERROR);
  frame.put8(code);
  frame.putText(message, 16);
  frame.send(out);
}

void sendPrediction(Print &out, uint16_t seq, uint8_t cls, uint8_t n_classes, const uint8_t scores[8],
                    uint32_t cycles) {
  Frame<21> frame(FRAME_PREDICTION);
  frame.put16(seq);
  frame.put8(cls);
  frame.put8(n_classes);
  for (uint8_t k = 0; k < 8; k++) frame.put8(scores[k]);
  frame.put32(cycles);
  frame.send(out);
}

void sendModel(Print &out, const ModelInfo &model) {
  Frame<103> frame(FRAME_MODEL);
  frame.putText(model.id, 12);
  frame.put8(model.n_classes);
  frame.put8(model.window);
  frame.put8(model.step);
  frame.put8(model.feature_set);
  frame.put16(model.rate_hz);
  for (uint8_t k = 0; k < 8; k++) {
    if (k < model.n_classes) {
      frame.putTextP(model.names + k * model.name_stride, 10);
    } else {
      frame.putText("", 10);
    }
  }
  frame.send(out);
}
