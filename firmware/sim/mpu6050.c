/* The simulated MPU-6050; see mpu6050.h. Modelled on simavr's parts/i2c_eeprom.c. */
#include "mpu6050.h"

#include <string.h>

#include "avr_twi.h"

#define PWR_DEVICE_RESET 0x80
#define PWR_SLEEP 0x40
#define TEMPERATURE_25C (-3920) /* (25 - 36.53) * 340, the datasheet's formula inverted */

static void reset_registers(mpu6050_t *p)
{
	memset(p->reg, 0, sizeof p->reg);
	p->reg[MPU6050_PWR_MGMT_1] = PWR_SLEEP; /* the chip powers up asleep */
	p->reg[MPU6050_WHO_AM_I] = p->who_am_i;
}

static void put_be16(uint8_t *at, int16_t v)
{
	at[0] = (uint8_t)((uint16_t)v >> 8);
	at[1] = (uint8_t)((uint16_t)v & 0xFF);
}

/* A new burst read from ACCEL_XOUT_H: the next row becomes the sensor's output registers. */
static void latch_next_row(mpu6050_t *p)
{
	const int16_t *row = p->rows + 6 * (p->burst_reads % p->n_rows);
	uint8_t *out = p->reg + MPU6050_ACCEL_XOUT_H;
	for (int i = 0; i < 3; i++) {
		put_be16(out + 2 * i, row[i]);         /* accel */
		put_be16(out + 8 + 2 * i, row[3 + i]); /* gyro, after the temperature */
	}
	put_be16(out + 6, TEMPERATURE_25C);
	p->burst_reads++;
}

static void write_register(mpu6050_t *p, uint8_t r, uint8_t v)
{
	if (r == MPU6050_WHO_AM_I || (r >= MPU6050_ACCEL_XOUT_H && r < MPU6050_ACCEL_XOUT_H + 14))
		return; /* read-only */
	if (r == MPU6050_PWR_MGMT_1 && (v & PWR_DEVICE_RESET)) {
		reset_registers(p); /* the reset bit clears itself */
		return;
	}
	p->reg[r] = v;
}

static void reply(mpu6050_t *p, uint8_t msg, uint8_t data)
{
	avr_raise_irq(p->irq + TWI_IRQ_INPUT, avr_twi_irq_msg(msg, p->selected, data));
}

/* What the AVR's TWI master puts on the bus: start + address, written bytes, reads, stop. */
static void bus_event(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	mpu6050_t *p = param;
	avr_twi_msg_irq_t v;
	v.u.v = value;

	if (v.u.twi.msg & TWI_COND_STOP)
		p->selected = 0;
	if (v.u.twi.msg & TWI_COND_START) { /* a start or repeated start, with the address byte */
		p->selected = 0;
		if ((v.u.twi.addr >> 1) == MPU6050_ADDRESS) {
			p->selected = v.u.twi.addr;
			reply(p, TWI_COND_ACK, 1);
			if (v.u.twi.addr & 1) {
				int awake = !(p->reg[MPU6050_PWR_MGMT_1] & PWR_SLEEP);
				if (p->pointer == MPU6050_ACCEL_XOUT_H && awake)
					latch_next_row(p);
			} else {
				p->want_pointer = 1;
			}
		}
	}
	if (!p->selected)
		return;
	if (v.u.twi.msg & TWI_COND_WRITE) {
		reply(p, TWI_COND_ACK, 1);
		if (p->want_pointer) {
			p->pointer = v.u.twi.data & 0x7F;
			p->want_pointer = 0;
		} else {
			write_register(p, p->pointer, v.u.twi.data);
			p->pointer = (p->pointer + 1) & 0x7F;
		}
	}
	if (v.u.twi.msg & TWI_COND_READ) {
		reply(p, TWI_COND_READ, p->reg[p->pointer]);
		p->pointer = (p->pointer + 1) & 0x7F;
	}
}

void mpu6050_init(avr_t *avr, mpu6050_t *p, uint8_t who_am_i, const int16_t *rows, size_t n_rows)
{
	static const char *names[2] = {"8<mpu6050.in", "32>mpu6050.out"};
	memset(p, 0, sizeof *p);
	p->who_am_i = who_am_i;
	p->rows = rows;
	p->n_rows = n_rows;
	reset_registers(p);
	p->irq = avr_alloc_irq(&avr->irq_pool, 0, 2, names);
	avr_irq_register_notify(p->irq + TWI_IRQ_OUTPUT, bus_event, p);
}

void mpu6050_attach(avr_t *avr, mpu6050_t *p)
{
	avr_connect_irq(p->irq + TWI_IRQ_INPUT, avr_io_getirq(avr, AVR_IOCTL_TWI_GETIRQ(0), TWI_IRQ_INPUT));
	avr_connect_irq(avr_io_getirq(avr, AVR_IOCTL_TWI_GETIRQ(0), TWI_IRQ_OUTPUT), p->irq + TWI_IRQ_OUTPUT);
}
