// The inertial sensor, whichever the board has: one implementation per sensor,
// chosen at compile time (imu_mpu6050.cpp for Uno/Nano; another board, e.g. a
// Nano 33 BLE with its LSM9DS1, adds its own file behind #if).
#ifndef HARDUINO_IMU_H
#define HARDUINO_IMU_H

#include "protocol.h"

// Name of the part found, ranges and scale factors, as the info frame reports them.
// The name is that of the part the last imuBegin() found.
extern SensorInfo IMU_INFO;

// Finds, resets and configures the sensor; false when it does not answer or is no part we know.
bool imuBegin();

// Why the last imuBegin() failed, in at most 16 ASCII characters (the error frame's message).
const char *imuProblem();

// One consistent reading: accel x, y, z then gyro x, y, z in raw counts; false when the sensor stopped answering.
bool imuRead(int16_t raw[6]);

#endif
