// The board's predictor: running sums per sample, then per window the `board` features and the
// exported model, one short step at a time (see predictor.h and docs/board-model.md).
#include "predictor.h"

#if defined(HARDUINO_HAS_MODEL)

namespace {

const uint8_t CHANNELS = 8;  // ax, ay, az, gx, gy, gz, |a|, |g|
const uint8_t CHUNKS = MODEL_WINDOW / MODEL_STEP;
const uint32_t AXIS_BIAS = 32768;  // axes are kept as u16 + 32768, so one min/max type serves all channels
const uint32_t CYCLES_PER_US = F_CPU / 1000000UL;

// The running sums of one channel over a chunk (MODEL_STEP samples) or over the window. The sum of
// squares is 40 bits (at most 255 squares below 2^32): a u32 and a carry byte, which the AVR adds in a
// few cycles where a u64 takes dozens.
struct Sums {
  int32_t sum;
  uint32_t squares;
  uint8_t squaresHigh;
  uint16_t lo, hi;
};

inline void addSquares(Sums &s, uint32_t square, uint8_t high) {
  const uint32_t before = s.squares;
  s.squares += square;
  s.squaresHigh += high + (s.squares < before);
}

Sums chunk[CHUNKS][CHANNELS];
Sums window[CHANNELS];
uint8_t filling = 0;   // the chunk being filled
uint8_t inChunk = 0;   // its samples so far
uint8_t complete = 0;  // complete chunks since the reset, up to CHUNKS
int32_t feature[MODEL_FEATURES];

enum Stage : uint8_t { IDLE, FEATURES, MODEL, READY };
Stage stage = IDLE;
uint8_t item = 0;  // the channel, tree or class the next step works on
Prediction result;
#if defined(MODEL_FOREST)
uint16_t votes[MODEL_CLASSES];
#else
int32_t logit[MODEL_CLASSES];
#endif
#if defined(MODEL_MLP)
int16_t input[MODEL_FEATURES];
int16_t hidden[MODEL_HIDDEN];
#endif

// D8 (PB0) is high while the board works on the model: a logic analyser, or the simulator, sees it.
#if defined(__AVR_ATmega328P__)
inline void busy(bool on) {
  if (on) PORTB |= _BV(PORTB0); else PORTB &= ~_BV(PORTB0);
}
#else
inline void busy(bool) {}
#endif

uint16_t isqrt32(uint32_t v) {
  uint32_t root = 0, bit = 1UL << 30;
  while (bit > v) bit >>= 2;
  while (bit != 0) {
    if (v >= root + bit) {
      v -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
    bit >>= 2;
  }
  return (uint16_t)root;
}

// floor(sqrt(v)) for v below 2^48 (a window of at most 255 samples): digit by digit, two bits of v
// for one bit of the root, in 32-bit words only (the remainder stays below 2^27).
uint32_t isqrt64(uint64_t v) {
  if (v <= 0xFFFFFFFFULL) return isqrt32((uint32_t)v);
  const uint32_t words[2] = {(uint32_t)(v >> 32), (uint32_t)v};
  uint32_t root = 0, rem = 0;
  for (uint8_t w = 0; w < 2; w++) {
    uint32_t x = words[w];
    for (uint8_t i = 0; i < 16; i++) {
      rem = (rem << 2) | (x >> 30);
      x <<= 2;
      const uint32_t trial = (root << 2) | 1;
      root <<= 1;
      if (rem >= trial) {
        rem -= trial;
        root |= 1;
      }
    }
  }
  return root;
}

void clear(Sums *sums) {
  for (uint8_t c = 0; c < CHANNELS; c++) {
    sums[c].sum = 0;
    sums[c].squares = 0;
    sums[c].squaresHigh = 0;
    sums[c].lo = 0xFFFF;
    sums[c].hi = 0;
  }
}

inline void add(Sums &s, uint16_t biased, int32_t value, uint32_t square) {
  s.sum += value;
  addSquares(s, square, 0);
  if (biased < s.lo) s.lo = biased;
  if (biased > s.hi) s.hi = biased;
}

void startWindow(uint16_t seq) {
  clear(window);
  for (uint8_t k = 0; k < CHUNKS; k++) {
    for (uint8_t c = 0; c < CHANNELS; c++) {
      const Sums &s = chunk[k][c];
      window[c].sum += s.sum;
      addSquares(window[c], s.squares, s.squaresHigh);
      if (s.lo < window[c].lo) window[c].lo = s.lo;
      if (s.hi > window[c].hi) window[c].hi = s.hi;
    }
  }
  result.seq = seq;
  result.cycles = 0;
  stage = FEATURES;
  item = 0;
}

// sum, N x standard deviation, min, max of one channel (boardfeatures.board_features_int).
void channelFeatures(uint8_t c) {
  const Sums &s = window[c];
  const uint64_t squares = ((uint64_t)s.squaresHigh << 32) | s.squares;
  const uint64_t spread = (uint64_t)MODEL_WINDOW * squares - (uint64_t)((int64_t)s.sum * s.sum);
  const int32_t offset = c < 6 ? (int32_t)AXIS_BIAS : 0;
  int32_t *f = feature + 4 * c;
  f[0] = s.sum;
  f[1] = (int32_t)isqrt64(spread);
  f[2] = (int32_t)s.lo - offset;
  f[3] = (int32_t)s.hi - offset;
}

#if defined(MODEL_FOREST)
const uint8_t MODEL_ITEMS = MODEL_TREES;

void modelStart() {
  for (uint8_t k = 0; k < MODEL_CLASSES; k++) votes[k] = 0;
}

void modelItem(uint8_t tree) {
  uint16_t ref = pgm_read_word(&MODEL_TREE_ROOT[tree]);
  while (!(ref & MODEL_LEAF_BIT)) {
    const uint8_t f = pgm_read_byte(&MODEL_NODE_FEATURE[ref]);
    const int32_t threshold = (int32_t)pgm_read_dword(&MODEL_NODE_THRESHOLD[ref]);
    ref = pgm_read_word(&MODEL_NODE_CHILD[ref][feature[f] <= threshold ? 0 : 1]);
  }
  const uint8_t *scores = MODEL_LEAF_SCORE[ref & ~MODEL_LEAF_BIT];
  for (uint8_t k = 0; k < MODEL_CLASSES; k++) votes[k] += pgm_read_byte(scores + k);
}

void modelFinish() {
  uint8_t best = 0;
  for (uint8_t k = 0; k < MODEL_CLASSES; k++) {
    if (votes[k] > votes[best]) best = k;
    result.scores[k] = (uint8_t)(votes[k] / MODEL_TREES);
  }
  result.cls = best;
}
#elif defined(MODEL_MLP)
// Step 0 quantises the inputs, then one step per hidden unit, then one per class (export_mlp.py).
const uint8_t MODEL_ITEMS = 1 + MODEL_HIDDEN + MODEL_CLASSES;

void modelStart() {}

void modelItem(uint8_t item) {
  if (item == 0) {
    for (uint8_t j = 0; j < MODEL_FEATURES; j++) {
      const int32_t q = (feature[j] - (int32_t)pgm_read_dword(&MODEL_INPUT_OFFSET[j])) >> pgm_read_byte(&MODEL_INPUT_SHIFT[j]);
      input[j] = q < -32768 ? -32768 : q > 32767 ? 32767 : (int16_t)q;
    }
  } else if (item <= MODEL_HIDDEN) {
    const uint8_t h = item - 1;
    int32_t acc = (int32_t)pgm_read_dword(&MODEL_HIDDEN_BIAS[h]);
    for (uint8_t j = 0; j < MODEL_FEATURES; j++) {
      acc += (int32_t)(int8_t)pgm_read_byte(&MODEL_HIDDEN_WEIGHT[h][j]) * input[j];
    }
    hidden[h] = acc > 0 ? (int16_t)(acc >> MODEL_HIDDEN_SHIFT) : 0;  // ReLU; export keeps it in 16 bits
  } else {
    const uint8_t k = item - 1 - MODEL_HIDDEN;
    int32_t acc = (int32_t)pgm_read_dword(&MODEL_OUTPUT_BIAS[k]);
    for (uint8_t h = 0; h < MODEL_HIDDEN; h++) {
      acc += (int32_t)(int8_t)pgm_read_byte(&MODEL_OUTPUT_WEIGHT[k][h]) * hidden[h];
    }
    logit[k] = acc;
  }
}
#else
const uint8_t MODEL_ITEMS = MODEL_CLASSES;

void modelStart() {}

void modelItem(uint8_t k) {
  int32_t acc = (int32_t)pgm_read_dword(&MODEL_BIAS[k]);
  for (uint8_t j = 0; j < MODEL_FEATURES; j++) {
    const int16_t x = (int16_t)(feature[j] >> pgm_read_byte(&MODEL_INPUT_SHIFT[j]));
    acc += (int32_t)(int16_t)pgm_read_word(&MODEL_WEIGHT[k][j]) * x;
  }
  logit[k] = acc;
}
#endif

#if !defined(MODEL_FOREST)
// 255 for the best class, 255 * 2^-(its lead in log2-odds) for the others, linear between powers of two.
void modelFinish() {
  uint8_t best = 0;
  for (uint8_t k = 1; k < MODEL_CLASSES; k++) {
    if (logit[k] > logit[best]) best = k;
  }
  for (uint8_t k = 0; k < MODEL_CLASSES; k++) {
    const uint32_t behind = (uint32_t)logit[best] - (uint32_t)logit[k];
    const uint32_t whole = behind >> MODEL_SCORE_BITS;
    const uint32_t part = behind & ((1UL << MODEL_SCORE_BITS) - 1);
    result.scores[k] = whole >= 8 ? 0 : (uint8_t)(((255UL * ((2UL << MODEL_SCORE_BITS) - part)) >> (MODEL_SCORE_BITS + 1)) >> whole);
  }
  result.cls = best;
}
#endif

}  // namespace

void predictorReset() {
#if defined(__AVR_ATmega328P__)
  DDRB |= _BV(DDB0);
#endif
  filling = 0;
  inChunk = 0;
  complete = 0;
  stage = IDLE;
}

void predictorAddSample(uint16_t seq, const int16_t raw[6]) {
  busy(true);
  Sums *c = chunk[filling];
  if (inChunk == 0) clear(c);
  uint32_t accel = 0, gyro = 0;
  for (uint8_t i = 0; i < 6; i++) {
    const int16_t v = raw[i];
    const uint32_t square = (uint32_t)((int32_t)v * v);
    add(c[i], (uint16_t)(v + AXIS_BIAS), v, square);
    if (i < 3) accel += square; else gyro += square;
  }
  const uint16_t a = isqrt32(accel), g = isqrt32(gyro);
  add(c[6], a, a, (uint32_t)a * a);
  add(c[7], g, g, (uint32_t)g * g);
  if (++inChunk == MODEL_STEP) {
    inChunk = 0;
    filling = (filling + 1) % CHUNKS;
    if (complete < CHUNKS) complete++;
    // A window still being worked on keeps its place: this one is skipped (never at the model's rate).
    if (complete == CHUNKS && stage == IDLE) startWindow(seq);
  }
  busy(false);
}

bool predictorBusy() {
  return stage == FEATURES || stage == MODEL;
}

bool predictorReady() {
  return stage == READY;
}

void predictorStep() {
  const uint32_t start = micros();
  busy(true);
  if (stage == FEATURES) {
    channelFeatures(item++);
    if (item == CHANNELS) {
      modelStart();
      stage = MODEL;
      item = 0;
    }
  } else if (stage == MODEL) {
    modelItem(item++);
    if (item == MODEL_ITEMS) {
      for (uint8_t k = 0; k < PREDICTION_MAX_CLASSES; k++) result.scores[k] = 0;
      modelFinish();
      stage = READY;
    }
  }
  busy(false);
  result.cycles += (micros() - start) * CYCLES_PER_US;
}

const Prediction &predictorTake() {
  stage = IDLE;
  return result;
}

#endif
