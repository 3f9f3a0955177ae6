// The model on the board: the `board` features of each window in fixed point, and the exported
// model's tables (model_tables.h, written by `harduino export`), evaluated in short steps between
// samples. docs/board-model.md is the contract; the host's integer twin (boardfeatures.py,
// export.py) does the same arithmetic, and the simulator tests check them bit for bit.
#ifndef HARDUINO_PREDICTOR_H
#define HARDUINO_PREDICTOR_H

#include <Arduino.h>

#if defined(HARDUINO_MODEL_BUILD)
#include <model_tables.h>  // make MODEL=...: the header exported into the build folder
#elif defined(__has_include)
#if __has_include("model_tables.h")
#include "model_tables.h"  // the Arduino IDE: a header exported into the sketch folder
#endif
#endif

#if defined(MODEL_ID)
#define HARDUINO_HAS_MODEL 1
#endif

static const uint8_t PREDICTION_MAX_CLASSES = 8;

struct Prediction {
  uint16_t seq;  // the sequence number of the window's last sample
  uint8_t cls;
  uint8_t scores[PREDICTION_MAX_CLASSES];  // 0..255 per class, 0 past the model's classes
  uint32_t cycles;  // CPU cycles spent on this window's features and model, by the board's clock
};

#if defined(HARDUINO_HAS_MODEL)

// Windows start again: after a gap in the samples, a start, a rate change.
void predictorReset();

// One sample read in slot `seq`: adds it to the running sums; a window may become due.
void predictorAddSample(uint16_t seq, const int16_t raw[6]);

// Whether a window's work is waiting (call predictorStep) and whether a prediction is ready.
bool predictorBusy();
bool predictorReady();

// One bounded step of the waiting window's work (at most a few hundred microseconds).
void predictorStep();

// The finished prediction; the next window may then use its slot.
const Prediction &predictorTake();

#endif
#endif
