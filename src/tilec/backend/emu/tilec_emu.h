// tilec emulator header: force-included (g++ -include, precompiled where the compiler allows) before a
// generated .cu (or .hip) file, so that the very same CUDA (or HIP) text compiles and runs on the CPU. It holds
// only declarations and inline device-side code; the runtime itself (emu_runtime.cc) is a shared library built
// once per cache and warp width.
// The prelude sees TILEC_EMU and leaves the definitions to us.
#pragma once
#ifndef TILEC_EMU
#define TILEC_EMU 1
#endif
#include "emu_api.h"
#include "emu_hip.h"
#include "emu_mfma.h"
#include "emu_wmma.h"
#include "emu_mma.h"
#include "emu_async.h"
#include "emu_mbarrier.h"
#include "emu_tma.h"
#include "emu_wgmma.h"
#include "emu_tma_store.h"
