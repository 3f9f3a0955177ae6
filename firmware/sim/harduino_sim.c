/*
 * Runs the built Harduino firmware in simavr, as an ATmega328P at 16 MHz with a simulated
 * MPU-6050 on I2C, and connects its UART0 to a file descriptor: normally the master side
 * of a pseudo-terminal that the host created and already opened, so no byte is lost.
 *
 *   harduino_sim FIRMWARE.elf --fd N --rows FILE [--realtime] [--who-am-i N | --no-sensor]
 *                [--seconds S]
 *
 * --rows   the sensor's readings: little-endian int16, 6 per row (accel x, y, z, gyro x, y, z);
 *          the k-th burst read returns row k, wrapping around at the end.
 * --realtime  paces simulated time to the wall clock and drops output nobody reads, as a
 *          USB-serial chip does; without it the simulation runs as fast as it can and waits
 *          (up to a second) for the reader instead of dropping bytes.
 * --seconds   stop after this much simulated time.
 * Bytes the host writes wait until the firmware's UART receiver is on, then go in at the
 * UART's own pace. SIGTERM or SIGINT ends the run; a summary goes to stderr, with what the
 * firmware's model cost: the cycles while it held D8 (PB0) high, the number and the longest of
 * those stretches, and the peak stack (the RAM above .bss is painted before boot, and the
 * deepest byte the stack changed is found at the end).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "avr_ioport.h"
#include "avr_uart.h"
#include "sim_avr.h"
#include "sim_elf.h"

#include "mpu6050.h"

#define MCU "atmega328p"
#define F_CPU 16000000
#define UCSR0B 0xC1 /* data-space address of the ATmega328P's UART0 control register B */
#define RXEN0 (1 << 4)
#define SERVICE_HZ 1000 /* how often the link is flushed and polled, in simulated time */
#define MAX_LAG_NS 200000000LL /* real time: further behind than this, stop trying to catch up */

typedef struct link_t {
	int fd;
	int realtime;
	avr_irq_t *uart_in;
	int uart_full;          /* the UART's receive FIFO said XOFF */
	uint8_t out[4096];
	size_t out_len;
	uint8_t in[256];
	size_t in_len, in_pos;
	unsigned long long sent, dropped;
	long long wall_start_ns;
} link_t;

#define STACK_PAINT 0xA5

/* D8 (PB0) high: the firmware is working on its model. */
typedef struct busy_t {
	avr_t *avr;
	avr_cycle_count_t since, total, longest;
	unsigned long long stretches;
} busy_t;

static void busy_pin(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	busy_t *b = param;
	if (value) {
		b->since = b->avr->cycle;
		return;
	}
	if (!b->since)
		return;
	avr_cycle_count_t spent = b->avr->cycle - b->since;
	b->total += spent;
	b->stretches++;
	if (spent > b->longest)
		b->longest = spent;
	b->since = 0;
}

/* The bytes from the end of .bss to the top of RAM the stack ever reached. */
static unsigned peak_stack(avr_t *avr, uint16_t floor)
{
	uint16_t addr = floor;
	while (addr <= avr->ramend && avr->data[addr] == STACK_PAINT)
		addr++;
	return (unsigned)(avr->ramend + 1 - addr);
}

static volatile sig_atomic_t stop_requested;

static void request_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void flush_output(link_t *l)
{
	size_t done = 0;
	while (done < l->out_len) {
		ssize_t n = write(l->fd, l->out + done, l->out_len - done);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/* Full (nobody reading) or gone. Free-running, give the reader a second to catch up. */
		struct pollfd pfd = {.fd = l->fd, .events = POLLOUT};
		if (n < 0 && errno == EAGAIN && !l->realtime && !stop_requested && poll(&pfd, 1, 1000) > 0)
			continue;
		break;
	}
	l->sent += done;
	l->dropped += l->out_len - done;
	l->out_len = 0;
}

static void uart_byte_out(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	link_t *l = param;
	if (l->out_len == sizeof l->out)
		flush_output(l);
	l->out[l->out_len++] = (uint8_t)value;
}

static void uart_xoff(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	((link_t *)param)->uart_full = value != 0;
}

static void uart_xon(struct avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	(void)value;
	((link_t *)param)->uart_full = 0;
}

static void feed_input(avr_t *avr, link_t *l)
{
	if (l->in_pos == l->in_len) {
		ssize_t n = read(l->fd, l->in, sizeof l->in);
		l->in_len = n > 0 ? (size_t)n : 0;
		l->in_pos = 0;
	}
	if (!(avr->data[UCSR0B] & RXEN0))
		return; /* the firmware is not listening yet: the bytes wait */
	while (l->in_pos < l->in_len && !l->uart_full)
		avr_raise_irq(l->uart_in, l->in[l->in_pos++]);
}

static void keep_pace(avr_t *avr, link_t *l)
{
	long long sim_ns = (long long)(avr->cycle * (1000000000.0 / avr->frequency));
	long long ahead = sim_ns - (now_ns() - l->wall_start_ns);
	if (ahead > 0) {
		struct timespec ts = {.tv_sec = ahead / 1000000000LL, .tv_nsec = ahead % 1000000000LL};
		nanosleep(&ts, NULL);
	} else if (ahead < -MAX_LAG_NS) {
		l->wall_start_ns += -ahead - MAX_LAG_NS; /* the machine stalled: slip rather than burst */
	}
}

static avr_cycle_count_t service_link(avr_t *avr, avr_cycle_count_t when, void *param)
{
	link_t *l = param;
	flush_output(l);
	feed_input(avr, l);
	if (l->realtime)
		keep_pace(avr, l);
	return when + avr->frequency / SERVICE_HZ;
}

static int16_t *read_rows(const char *path, size_t *n_rows)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (size < 12 || size % 12 != 0) {
		fclose(f);
		return NULL;
	}
	uint8_t *bytes = malloc((size_t)size);
	int16_t *rows = malloc((size_t)size);
	int ok = bytes && rows && fread(bytes, 1, (size_t)size, f) == (size_t)size;
	fclose(f);
	if (ok)
		for (long i = 0; i < size / 2; i++)
			rows[i] = (int16_t)(bytes[2 * i] | (bytes[2 * i + 1] << 8));
	free(bytes);
	if (!ok) {
		free(rows);
		return NULL;
	}
	*n_rows = (size_t)size / 12;
	return rows;
}

static void usage(void)
{
	fprintf(stderr, "usage: harduino_sim FIRMWARE.elf --fd N --rows FILE [--realtime] "
			"[--who-am-i N | --no-sensor] [--seconds S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *elf = NULL, *rows_path = NULL;
	int fd = -1, realtime = 0, sensor = 1;
	long who_am_i = MPU6050_ADDRESS;
	double seconds = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int more = i + 1 < argc;
		if (!strcmp(a, "--fd") && more)
			fd = atoi(argv[++i]);
		else if (!strcmp(a, "--rows") && more)
			rows_path = argv[++i];
		else if (!strcmp(a, "--realtime"))
			realtime = 1;
		else if (!strcmp(a, "--no-sensor"))
			sensor = 0;
		else if (!strcmp(a, "--who-am-i") && more)
			who_am_i = strtol(argv[++i], NULL, 0);
		else if (!strcmp(a, "--seconds") && more)
			seconds = atof(argv[++i]);
		else if (a[0] != '-' && !elf)
			elf = a;
		else
			usage();
	}
	if (!elf || fd < 0 || !rows_path)
		usage();

	/* libsimavr reports on stdout; only stderr is ours to write, the data goes to fd. */
	dup2(STDERR_FILENO, STDOUT_FILENO);
	setvbuf(stdout, NULL, _IOLBF, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the host that started us */
	signal(SIGTERM, request_stop);
	signal(SIGINT, request_stop);
	signal(SIGPIPE, SIG_IGN);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

	size_t n_rows = 0;
	int16_t *rows = read_rows(rows_path, &n_rows);
	if (!rows) {
		fprintf(stderr, "harduino_sim: %s is not a rows file (int16 x 6 per row)\n", rows_path);
		return 2;
	}
	elf_firmware_t fw;
	memset(&fw, 0, sizeof fw);
	if (elf_read_firmware(elf, &fw) != 0) {
		fprintf(stderr, "harduino_sim: cannot load %s\n", elf);
		return 2;
	}
	strcpy(fw.mmcu, MCU);
	fw.frequency = F_CPU;
	avr_t *avr = avr_make_mcu_by_name(fw.mmcu);
	if (!avr || avr_init(avr) != 0) {
		fprintf(stderr, "harduino_sim: simavr has no %s\n", MCU);
		return 2;
	}
	avr_load_firmware(avr, &fw);
	const uint16_t stack_floor = (uint16_t)(0x100 + fw.datasize + fw.bsssize); /* the ATmega328P's RAM starts at 0x100 */
	memset(avr->data + stack_floor, STACK_PAINT, avr->ramend + 1 - stack_floor);
	busy_t busy = {.avr = avr};
	avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('B'), 0), busy_pin, &busy);

	link_t link = {.fd = fd, .realtime = realtime, .wall_start_ns = now_ns()};
	uint32_t flags = 0;
	avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
	flags &= ~(AVR_UART_FLAG_STDIO | AVR_UART_FLAG_POLL_SLEEP);
	avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
	avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT),
				uart_byte_out, &link);
	avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF),
				uart_xoff, &link);
	avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON),
				uart_xon, &link);
	link.uart_in = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
	avr_cycle_timer_register(avr, avr->frequency / SERVICE_HZ, service_link, &link);

	mpu6050_t mpu;
	mpu6050_init(avr, &mpu, (uint8_t)who_am_i, rows, n_rows);
	if (sensor)
		mpu6050_attach(avr, &mpu);

	avr_cycle_count_t limit = seconds > 0 ? (avr_cycle_count_t)(seconds * avr->frequency) : 0;
	int state = cpu_Running;
	while (!stop_requested && state != cpu_Done && state != cpu_Crashed && (!limit || avr->cycle < limit))
		state = avr_run(avr);
	flush_output(&link);

	fprintf(stderr,
		"harduino_sim: %.3f simulated s; %llu bytes sent, %llu dropped; %llu burst reads; "
		"PWR_MGMT_1=0x%02x SMPLRT_DIV=0x%02x CONFIG=0x%02x GYRO_CONFIG=0x%02x ACCEL_CONFIG=0x%02x "
		"ACCEL_CONFIG2=0x%02x; model %llu cycles in %llu stretches, longest %llu; stack %u bytes\n",
		(double)avr->cycle / avr->frequency, link.sent, link.dropped,
		(unsigned long long)mpu.burst_reads, mpu.reg[MPU6050_PWR_MGMT_1], mpu.reg[MPU6050_SMPLRT_DIV],
		mpu.reg[MPU6050_CONFIG], mpu.reg[MPU6050_GYRO_CONFIG], mpu.reg[MPU6050_ACCEL_CONFIG],
		mpu.reg[MPU6050_ACCEL_CONFIG2], (unsigned long long)busy.total, busy.stretches,
		(unsigned long long)busy.longest, peak_stack(avr, stack_floor));
	free(rows);
	return state == cpu_Crashed ? 1 : 0;
}
