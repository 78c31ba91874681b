// tilec emulator header: force-included (g++ -include) before a generated .cu file, so that the very same
// CUDA text compiles and runs on the CPU. The prelude sees TILEC_EMU and leaves the definitions to us.
#pragma once
#ifndef TILEC_EMU
#define TILEC_EMU 1
#endif
#include "emu_launch.h"
#include "emu_wmma.h"
