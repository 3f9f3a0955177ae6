// Harduino: streams an IMU's accelerometer and gyroscope over USB serial as protocol v1 frames
// (docs/protocol.md), on a fixed micros() schedule, and answers text commands, one per line:
//   start | stop | info | rate <hz>
// Board: Arduino Uno or Nano (ATmega328P, 16 MHz) with an MPU-6050 on I2C; see firmware/README.md.
#include <Arduino.h>

#include "imu.h"
#include "protocol.h"

static const uint32_t BAUD = 115200;
static const uint16_t DEFAULT_RATE_HZ = 50;
static const uint16_t MAX_RATE_HZ = 1000;
static const uint32_t SENSOR_RETRY_MS = 1000;
static const uint16_t BLINK_MS = 250;
static const uint8_t MAX_LINE = 24;

static bool sensorReady = false;
static bool streaming = true;  // streams from power-up, so a plain terminal shows data at once
static uint16_t rateHz = DEFAULT_RATE_HZ;
static uint16_t seq = 0;  // +1 per sample slot since power-up; stop/start does not reset it
static uint32_t lastSensorTry = 0;

// The schedule: slot k is due at start + k * 1e6 / rateHz µs. The period is kept as whole µs
// plus a remainder in 1/rateHz µs, so rates that do not divide a second do not drift.
static uint32_t nextDue = 0;
static bool scheduleStarting = true;  // the next sample starts the schedule's grid
static uint32_t periodUs = 1000000UL / DEFAULT_RATE_HZ;
static uint16_t periodRemainder = 0;
static uint16_t remainderSum = 0;

static char line[MAX_LINE + 1];
static uint8_t lineLen = 0;
static bool lineTooLong = false;

static void startSchedule() {
  periodUs = 1000000UL / rateHz;
  periodRemainder = 1000000UL % rateHz;
  remainderSum = 0;
  scheduleStarting = true;
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

static void reportSensorMissing() {
  sendError(Serial, ERROR_SENSOR_MISSING, "no MPU-6050");
}

// The info frame, or while the sensor is missing the error frame that says so.
static void reportState() {
  if (sensorReady) {
    sendInfo(Serial, IMU_INFO, rateHz);
  } else {
    reportSensorMissing();
  }
}

static void trySensor() {
  lastSensorTry = millis();
  sensorReady = imuBegin();
  if (sensorReady) startSchedule();
  reportState();
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
  sendSample(Serial, seq, t, raw);
  advanceSlot();
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
  } else if (strcmp(text, "rate") == 0) {
    char *end = NULL;
    const long hz = arg != NULL ? strtol(arg, &end, 10) : 0;
    if (arg == NULL || end == arg || *end != '\0' || hz < 1 || hz > MAX_RATE_HZ) {
      sendError(Serial, ERROR_BAD_RATE, "rate 1..1000");
      return;
    }
    rateHz = (uint16_t)hz;
    startSchedule();
    reportState();
  } else {
    sendError(Serial, ERROR_BAD_COMMAND, "unknown command");
  }
}

// Collects bytes into a line; \r is ignored so the Serial Monitor's line endings all work.
static void readCommands() {
  while (Serial.available() > 0) {
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
      sendError(Serial, ERROR_BAD_COMMAND, "line too long");
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
  if (streaming) sampleIfDue();
}
