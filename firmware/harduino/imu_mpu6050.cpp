// MPU-6050 on I2C (Uno/Nano: SDA = A4, SCL = A5), register map from the
// MPU-6000/MPU-6050 register map document, revision 4.2, and the register-compatible
// parts sold on "MPU-6050" boards (same registers for the readings, ranges and reset).
#include "imu.h"

#if defined(ARDUINO_ARCH_AVR)

#include <Wire.h>

namespace {

const uint8_t ADDRESS = 0x68;  // AD0 low; 0x69 with AD0 tied high

const uint8_t REG_SMPLRT_DIV = 0x19;
const uint8_t REG_CONFIG = 0x1A;
const uint8_t REG_GYRO_CONFIG = 0x1B;
const uint8_t REG_ACCEL_CONFIG = 0x1C;
const uint8_t REG_ACCEL_CONFIG2 = 0x1D;  // MPU-6500 family: the accelerometer's own low-pass filter
const uint8_t REG_ACCEL_XOUT_H = 0x3B;  // 14 bytes: accel xyz, temperature, gyro xyz, big-endian
const uint8_t REG_PWR_MGMT_1 = 0x6B;
const uint8_t REG_WHO_AM_I = 0x75;

const uint8_t PWR_DEVICE_RESET = 0x80;
const uint8_t PWR_CLOCK_PLL_GYRO_X = 0x01;  // awake, clocked from the X gyro (steadier than the internal oscillator)
const uint8_t DLPF_44HZ = 0x03;             // accel 44 Hz, gyro 42 Hz bandwidth: below Nyquist at 100 Hz
const uint8_t ACCEL_DLPF_45HZ = 0x03;       // MPU-6500 family: the accelerometer's 44.8 Hz, as DLPF_44HZ
const uint8_t FS_ACCEL_2G = 0x00;
const uint8_t FS_GYRO_250DPS = 0x00;

// The parts whose WHO_AM_I we accept. The MPU-6500 family keeps the accelerometer's filter in
// ACCEL_CONFIG2; on the MPU-6050 that address is unused, so it is written only where it exists.
struct Part {
  uint8_t whoAmI;
  char name[13];  // at most 12 characters, as the info frame carries
  bool accelConfig2;
};

const Part PARTS[] PROGMEM = {
    {0x68, "MPU-6050", false},  // also the MPU-6000 and MPU-9150
    {0x70, "MPU-6500", true},
    {0x71, "MPU-9250", true},
    {0x73, "MPU-9255", true},
    {0x72, "clone 0x72", true},  // GY-521 boards with an unbranded compatible chip
    {0x98, "ICM-20689", true},   // also reported by some GY-521 clones
    {0x12, "ICM-20602", true},
    {0xAF, "ICM-20608", true},
};

Part found;
char problem[17] = "no MPU-6050";

char hexDigit(uint8_t d) { return d < 10 ? '0' + d : 'A' + d - 10; }

bool findPart(uint8_t who) {
  for (uint8_t i = 0; i < sizeof PARTS / sizeof PARTS[0]; i++) {
    memcpy_P(&found, &PARTS[i], sizeof found);
    if (found.whoAmI == who) return true;
  }
  return false;
}

bool writeRegister(uint8_t reg, uint8_t value) {
  Wire.beginTransmission(ADDRESS);
  Wire.write(reg);
  Wire.write(value);
  return Wire.endTransmission() == 0;
}

// Reads n registers from reg on, with a repeated start so nobody gets between the two.
bool readRegisters(uint8_t reg, uint8_t *out, uint8_t n) {
  Wire.beginTransmission(ADDRESS);
  Wire.write(reg);
  if (Wire.endTransmission(false) != 0) return false;
  if (Wire.requestFrom(ADDRESS, n) != n) return false;
  for (uint8_t i = 0; i < n; i++) out[i] = Wire.read();
  return true;
}

}  // namespace

SensorInfo IMU_INFO = {"MPU-6050", 2, 250, 16384.0f, 131.0f};

const char *imuProblem() { return problem; }

bool imuBegin() {
  Wire.begin();  // again on every attempt: also frees a bus left stuck by a sensor unplugged mid-transfer
  Wire.setClock(400000);
  Wire.setWireTimeout(3000, true);  // µs; a dead bus must not hang the board
  uint8_t who = 0;
  strcpy_P(problem, PSTR("no MPU-6050"));
  if (!readRegisters(REG_WHO_AM_I, &who, 1)) return false;
  if (!findPart(who)) {
    // Names what the chip says, so whoever bought it knows what they have.
    strcpy_P(problem, PSTR("WHO_AM_I 0x"));
    problem[11] = hexDigit(who >> 4);
    problem[12] = hexDigit(who & 0x0F);
    problem[13] = '\0';
    return false;
  }
  IMU_INFO.name = found.name;
  if (!writeRegister(REG_PWR_MGMT_1, PWR_DEVICE_RESET)) return false;
  delay(100);  // the reset takes up to 100 ms (set-up only; sampling is never paced by delay)
  return writeRegister(REG_PWR_MGMT_1, PWR_CLOCK_PLL_GYRO_X) &&
         writeRegister(REG_SMPLRT_DIV, 0) &&  // 1 kHz internal rate with the filter on
         writeRegister(REG_CONFIG, DLPF_44HZ) &&
         writeRegister(REG_GYRO_CONFIG, FS_GYRO_250DPS) &&
         writeRegister(REG_ACCEL_CONFIG, FS_ACCEL_2G) &&
         (!found.accelConfig2 || writeRegister(REG_ACCEL_CONFIG2, ACCEL_DLPF_45HZ));
}

bool imuRead(int16_t raw[6]) {
  uint8_t b[14];
  if (!readRegisters(REG_ACCEL_XOUT_H, b, sizeof b)) return false;
  for (uint8_t i = 0; i < 3; i++) {
    raw[i] = (int16_t)((b[2 * i] << 8) | b[2 * i + 1]);          // accel
    raw[3 + i] = (int16_t)((b[8 + 2 * i] << 8) | b[9 + 2 * i]);  // gyro, after the temperature
  }
  return true;
}

#endif
