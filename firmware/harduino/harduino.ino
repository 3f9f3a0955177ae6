// Harduino: streams an IMU's accelerometer and gyroscope over USB serial as protocol v2 frames
// (docs/protocol.md), on a fixed micros() schedule, and answers text commands, one per line:
//   start | stop | info | rate <hz> | text | binary | predict on | predict off
// `text` prints CSV lines instead of frames, for the Arduino IDE's Serial Plotter and Edge
// Impulse's data forwarder; `binary` returns to frames. With a model built in (`harduino export`,
// docs/board-model.md) the board also predicts the activity every window step.
// Board: Arduino Uno or Nano (ATmega328P, 16 MHz) with an MPU-6050 on I2C; see firmware/README.md.
#include <Arduino.h>

#include "imu.h"
#include "predictor.h"
#include "protocol.h"

static const uint32_t BAUD = 115200;
#if defined(HARDUINO_HAS_MODEL)
static const uint16_t DEFAULT_RATE_HZ = MODEL_RATE_HZ;  // the rate the model was trained at
#else
static const uint16_t DEFAULT_RATE_HZ = 50;
#endif
static const uint16_t MAX_RATE_HZ = 1000;
static const uint32_t SENSOR_RETRY_MS = 1000;
static const uint16_t BLINK_MS = 250;
static const uint8_t MAX_LINE = 24;
// A text line is at most 49 bytes, so about 235 fit in a second at 115200 baud: above this many
// samples a second, text mode prints every k-th sample.
static const uint16_t TEXT_MAX_LINES_HZ = 200;
static const uint8_t TEXT_ACCEL_DECIMALS = 4;  // g: 0.1 mg, near the ±2 g range's 0.06 mg per count
static const uint8_t TEXT_GYRO_DECIMALS = 2;   // °/s: 0.01, near the ±250 °/s range's 0.008 per count

static bool sensorReady = false;
static bool streaming = true;  // streams from power-up, so a plain terminal shows data at once
static uint16_t rateHz = DEFAULT_RATE_HZ;
static uint16_t seq = 0;  // +1 per sample slot since power-up; stop/start does not reset it
static uint32_t lastSensorTry = 0;
static bool textMode = false;  // CSV lines instead of frames; power-up is always binary
static uint8_t textEvery = 1;  // text mode prints every textEvery-th sample
static uint8_t textCountdown = 1;

// The schedule: slot k is due at start + k * 1e6 / rateHz µs. The period is kept as whole µs
// plus a remainder in 1/rateHz µs, so rates that do not divide a second do not drift.
static uint32_t nextDue = 0;
static bool scheduleStarting = true;  // the next sample starts the schedule's grid
static uint32_t periodUs = 1000000UL / DEFAULT_RATE_HZ;
static uint16_t periodRemainder = 0;
static uint16_t remainderSum = 0;
static bool behind = false;  // the last sample went out after the next slot was due

// A command runs only while the next slot is at least this far away and the UART's buffer has
// room for an info frame, so its reply neither keeps the loop busy past a slot nor waits for the
// wire; or when the board is behind anyway, so `stop` still works on a saturated link; or when
// a quarter of the receive buffer is waiting, so a flood of commands delays samples, not loses bytes.
static const uint16_t COMMAND_GUARD_US = 500;  // an error or info frame costs about 0.1 ms
static const uint8_t COMMAND_REPLY_ROOM = 34;  // an info frame's bytes

#if defined(HARDUINO_HAS_MODEL)
// A model step runs only this long before the next slot is due, so a sample is never read late.
static const uint16_t MODEL_STEP_GUARD_US = 800;
static const uint8_t PREDICTION_FRAME_LEN = 21;
#define MODEL_TEXT(x) #x
#define MODEL_RATE_TEXT_OF(x) MODEL_TEXT(x)
#define MODEL_RATE_TEXT MODEL_RATE_TEXT_OF(MODEL_RATE_HZ)
static bool predicting = true;  // a model built in predicts from power-up; `predict off` stops it
static bool windowsStartAgain = true;  // the next sample starts the window grid afresh
static uint16_t nextPredictSeq = 0;
static const ModelInfo MODEL_INFO = {MODEL_ID, MODEL_CLASSES, MODEL_WINDOW, MODEL_STEP, MODEL_FEATURE_SET,
                                     MODEL_RATE_HZ, MODEL_CLASS_NAME[0], sizeof MODEL_CLASS_NAME[0]};
#endif

static char line[MAX_LINE + 1];
static uint8_t lineLen = 0;
static bool lineTooLong = false;

static void startSchedule() {
  periodUs = 1000000UL / rateHz;
  periodRemainder = 1000000UL % rateHz;
  remainderSum = 0;
  scheduleStarting = true;
#if defined(HARDUINO_HAS_MODEL)
  windowsStartAgain = true;
#endif
}

static void advanceSlot() {
  seq++;
  nextDue += periodUs;
  remainderSum += periodRemainder;
  if (remainderSum >= rateHz) {
    remainderSum -= rateHz;
    nextDue++;
  }
}

// An error frame, or in text mode the same message as a comment line.
static void reportError(ErrorCode code, const char *message) {
  if (!textMode) {
    sendError(Serial, code, message);
    return;
  }
  Serial.print(F("# error: "));
  Serial.println(message);
}

static void reportSensorMissing() {
  reportError(ERROR_SENSOR_MISSING, imuProblem());
}

// Text mode's answer: what is printed, then the header line naming the columns.
static void printTextHeader() {
  textEvery = (rateHz + TEXT_MAX_LINES_HZ - 1) / TEXT_MAX_LINES_HZ;
  textCountdown = 1;  // the next sample is printed
  Serial.print(F("# harduino "));
  Serial.print(IMU_INFO.name);
  Serial.print(' ');
  Serial.print(rateHz);
  if (textEvery == 1) {
    Serial.println(F(" Hz, every sample printed"));
  } else {
    Serial.print(F(" Hz, 1 in "));
    Serial.print(textEvery);
    Serial.print(F(" samples printed ("));
    Serial.print(rateHz / textEvery);
    Serial.println(F(" lines/s)"));
  }
  Serial.println(F("ax_g,ay_g,az_g,gx_dps,gy_dps,gz_dps"));
}

// The info frame (in text mode the header), or while the sensor is missing the error that says so.
static void reportState() {
  if (!sensorReady) {
    reportSensorMissing();
  } else if (textMode) {
    printTextHeader();
  } else {
    sendInfo(Serial, IMU_INFO, rateHz);
  }
}

// Writes v / 10^decimals, e.g. -12345 with 4 decimals as "-1.2345". |v| fits 16 bits: each
// unit is coarser than a raw count, and 16-bit division keeps a line well under a millisecond.
static char *putFixed(char *at, int32_t v, uint8_t decimals) {
  if (v < 0) *at++ = '-';
  uint16_t u = (uint16_t)(v < 0 ? -v : v);
  char digits[6];
  uint8_t n = 0;
  do {
    digits[n++] = '0' + u % 10;
    u /= 10;
  } while (u > 0 || n <= decimals);
  while (n > 0) {
    if (n == decimals) *at++ = '.';
    *at++ = digits[--n];
  }
  return at;
}

// One CSV line: acceleration in g, angular rate in °/s, with the scale the info frame reports.
static void printTextLine(const int16_t raw[6]) {
  const float accel = 10000.0f / IMU_INFO.accel_lsb_per_g;  // 10^TEXT_ACCEL_DECIMALS
  const float gyro = 100.0f / IMU_INFO.gyro_lsb_per_dps;    // 10^TEXT_GYRO_DECIMALS
  char text[52];
  char *at = text;
  for (uint8_t i = 0; i < 6; i++) {
    if (i > 0) *at++ = ',';
    at = i < 3 ? putFixed(at, lround(raw[i] * accel), TEXT_ACCEL_DECIMALS)
               : putFixed(at, lround(raw[i] * gyro), TEXT_GYRO_DECIMALS);
  }
  *at++ = '\r';  // the Serial Plotter wants \r\n
  *at++ = '\n';
  Serial.write((const uint8_t *)text, at - text);
}

#if defined(HARDUINO_HAS_MODEL)
// The sample read in slot `slot` goes into the model's running sums; a gap starts the windows again.
static void feedModel(uint16_t slot, const int16_t raw[6]) {
  if (!predicting || rateHz != MODEL_RATE_HZ) return;
  if (windowsStartAgain || slot != nextPredictSeq) predictorReset();
  windowsStartAgain = false;
  nextPredictSeq = slot + 1;
  predictorAddSample(slot, raw);
}

static void sendModelInfo() {
  if (!textMode) sendModel(Serial, MODEL_INFO);
}

// In text mode the activity as a comment line: `# activity walking 230/255`.
static void printPrediction(const Prediction &p) {
  char name[sizeof MODEL_CLASS_NAME[0]];
  strcpy_P(name, MODEL_CLASS_NAME[p.cls]);
  Serial.print(F("# activity "));
  Serial.print(name);
  Serial.print(' ');
  Serial.print(p.scores[p.cls]);
  Serial.print(F("/255\r\n"));
}

// One step of the model's work when the next slot is far enough away; the prediction once the UART has room.
static void workOnModel() {
  if (!predicting || scheduleStarting || (int32_t)(nextDue - micros()) < (int32_t)MODEL_STEP_GUARD_US) return;
  if (predictorBusy()) {
    predictorStep();
  } else if (predictorReady() && (textMode || Serial.availableForWrite() >= PREDICTION_FRAME_LEN)) {
    const Prediction &p = predictorTake();
    if (textMode) {
      printPrediction(p);
    } else {
      sendPrediction(Serial, p.seq, p.cls, MODEL_CLASSES, p.scores, p.cycles);
    }
  }
}

static void setPredicting(const char *arg) {
  if (arg != NULL && strcmp(arg, "off") == 0) {
    predicting = false;
    predictorReset();
  } else if (arg != NULL && strcmp(arg, "on") == 0) {
    if (!predicting) windowsStartAgain = true;
    predicting = true;
    if (rateHz != MODEL_RATE_HZ) reportError(ERROR_MODEL_RATE, "model at " MODEL_RATE_TEXT " Hz");
  } else {
    reportError(ERROR_BAD_COMMAND, "predict on|off");
  }
}
#else
static void feedModel(uint16_t, const int16_t *) {}
static void sendModelInfo() {}
static void workOnModel() {}
static void setPredicting(const char *) {
  reportError(ERROR_NO_MODEL, "no model");
}
#endif

static void trySensor() {
  lastSensorTry = millis();
  sensorReady = imuBegin();
  if (sensorReady) startSchedule();
  reportState();
  if (sensorReady) sendModelInfo();
}

static void setLed(bool on) {
  digitalWrite(LED_BUILTIN, on ? HIGH : LOW);
}

// Reads and sends the due slot. A late reading is sent late; slots that passed entirely
// while the board was busy are skipped, and the sequence number shows the gap.
static void sampleIfDue() {
  uint32_t now = micros();
  if (scheduleStarting) {
    nextDue = now;
    scheduleStarting = false;
  }
  behind = false;
  if ((int32_t)(now - nextDue) < 0) return;
  while ((int32_t)(now - nextDue) >= (int32_t)periodUs) advanceSlot();
  int16_t raw[6];
  const uint32_t t = micros();
  if (!imuRead(raw)) {
    sensorReady = false;
    lastSensorTry = millis();
    reportSensorMissing();
    setLed(false);
    return;
  }
  if (!textMode) {
    sendSample(Serial, seq, t, raw);
  } else if (--textCountdown == 0) {
    printTextLine(raw);
    textCountdown = textEvery;
  }
  feedModel(seq, raw);
  advanceSlot();
  behind = (int32_t)(micros() - nextDue) >= 0;
  setLed((t / 1000UL / BLINK_MS) & 1);
}

static void runCommand(char *text) {
  char *arg = strchr(text, ' ');
  if (arg != NULL) *arg++ = '\0';
  if (strcmp(text, "start") == 0) {
    if (!streaming) {
      streaming = true;
      startSchedule();  // the next slot is now; the sequence number carries on
    }
  } else if (strcmp(text, "stop") == 0) {
    streaming = false;
    setLed(false);
  } else if (strcmp(text, "info") == 0) {
    reportState();
    if (sensorReady) sendModelInfo();
  } else if (strcmp(text, "predict") == 0) {
    setPredicting(arg);
  } else if (strcmp(text, "rate") == 0) {
    char *end = NULL;
    const long hz = arg != NULL ? strtol(arg, &end, 10) : 0;
    if (arg == NULL || end == arg || *end != '\0' || hz < 1 || hz > MAX_RATE_HZ) {
      reportError(ERROR_BAD_RATE, "rate 1..1000");
      return;
    }
    rateHz = (uint16_t)hz;
    startSchedule();
    reportState();
  } else if (strcmp(text, "text") == 0) {
    textMode = true;
    reportState();
  } else if (strcmp(text, "binary") == 0) {
    textMode = false;  // silent: the host sends `info` next when it wants the info frame
  } else {
    reportError(ERROR_BAD_COMMAND, "unknown command");
  }
}

static bool commandMayRun() {
  if (!sensorReady || !streaming || scheduleStarting || behind) return true;
  if (Serial.available() >= SERIAL_RX_BUFFER_SIZE / 4) return true;
  return (int32_t)(nextDue - micros()) >= (int32_t)COMMAND_GUARD_US &&
         Serial.availableForWrite() >= COMMAND_REPLY_ROOM;
}

// Collects bytes into lines and runs them while commandMayRun() allows; \r is ignored so the
// Serial Monitor's line endings all work.
static void readCommands() {
  while (Serial.available() > 0 && commandMayRun()) {
    const char c = (char)Serial.read();
    if (c == '\r') continue;
    if (c != '\n') {
      if (lineLen < MAX_LINE) {
        line[lineLen++] = (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
      } else {
        lineTooLong = true;
      }
      continue;
    }
    line[lineLen] = '\0';
    if (lineTooLong) {
      reportError(ERROR_BAD_COMMAND, "line too long");
    } else if (lineLen > 0) {
      runCommand(line);
    }
    lineLen = 0;
    lineTooLong = false;
  }
}

void setup() {
  pinMode(LED_BUILTIN, OUTPUT);
  Serial.begin(BAUD);
  trySensor();
}

void loop() {
  readCommands();
  if (!sensorReady) {
    if (millis() - lastSensorTry >= SENSOR_RETRY_MS) trySensor();
    return;
  }
  if (streaming) {
    sampleIfDue();
    workOnModel();
  }
}
