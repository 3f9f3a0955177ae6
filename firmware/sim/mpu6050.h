/*
 * A simulated MPU-6050 on simavr's I2C bus: a register file that reads and writes as the
 * datasheet says (WHO_AM_I, PWR_MGMT_1 with sleep and device reset, the configuration
 * registers, auto-incrementing burst reads), whose sensor registers serve recorded rows.
 *
 * The k-th read that starts at ACCEL_XOUT_H while the chip is awake latches row k (mod the
 * number of rows: the rows wrap around) into ACCEL_XOUT_H .. GYRO_ZOUT_L, so the host that
 * wrote the rows knows exactly what the firmware must send.
 */
#ifndef HARDUINO_SIM_MPU6050_H
#define HARDUINO_SIM_MPU6050_H

#include <stddef.h>
#include <stdint.h>

#include "sim_avr.h"
#include "sim_irq.h"

#define MPU6050_ADDRESS 0x68

enum {
	MPU6050_SMPLRT_DIV = 0x19,
	MPU6050_CONFIG = 0x1A,
	MPU6050_GYRO_CONFIG = 0x1B,
	MPU6050_ACCEL_CONFIG = 0x1C,
	MPU6050_ACCEL_CONFIG2 = 0x1D, /* the MPU-6500 family's accelerometer filter; unused on the MPU-6050 */
	MPU6050_ACCEL_XOUT_H = 0x3B,
	MPU6050_PWR_MGMT_1 = 0x6B,
	MPU6050_WHO_AM_I = 0x75,
};

typedef struct mpu6050_t {
	avr_irq_t *irq;        /* our end of the TWI input/output pair */
	uint8_t reg[128];
	uint8_t who_am_i;      /* 0x68 for a genuine part; 0x70 an MPU-6500, other values a clone or another chip */
	uint8_t pointer;       /* the register the next byte reads or writes */
	uint8_t selected;      /* the address byte (with its R/W bit) while we are addressed, else 0 */
	int want_pointer;      /* the next byte written sets the pointer */
	const int16_t *rows;   /* n_rows x 6: accel x, y, z, gyro x, y, z */
	size_t n_rows;
	uint64_t burst_reads;
} mpu6050_t;

void mpu6050_init(avr_t *avr, mpu6050_t *p, uint8_t who_am_i, const int16_t *rows, size_t n_rows);

/* Connects the chip to the AVR's TWI; without this call the bus has nobody at 0x68. */
void mpu6050_attach(avr_t *avr, mpu6050_t *p);

#endif
