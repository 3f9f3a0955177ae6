// The inertial sensor, whichever the board has: one implementation per sensor,
// chosen at compile time (imu_mpu6050.cpp for Uno/Nano; another board, e.g. a
// Nano 33 BLE with its LSM9DS1, adds its own file behind #if).
#ifndef HARDUINO_IMU_H
#define HARDUINO_IMU_H

#include "protocol.h"

// Name, ranges and scale factors, as the info frame reports them.
extern const SensorInfo IMU_INFO;

// Finds, resets and configures the sensor; false when it does not answer or is not the expected chip.
bool imuBegin();

// One consistent reading: accel x, y, z then gyro x, y, z in raw counts; false when the sensor stopped answering.
bool imuRead(int16_t raw[6]);

#endif
