// tilec emulator: the context switch under the fibers that stand in for CUDA threads (the Context type is
// part of the kernel-visible Fiber; only the runtime library, emu_runtime.cc, switches contexts).
// x86-64 gets a hand-written switch (callee-saved registers + MXCSR/x87 control word, ~10 ns); other
// architectures fall back to ucontext, which is correct but slower (it saves the signal mask with a syscall).
#pragma once
#include <cstddef>
#include <cstdint>

namespace tl_emu {
typedef void (*FiberEntry)();
}

#if defined(__x86_64__) && !defined(TILEC_EMU_UCONTEXT)
// tl_emu_switch(save, to): store the current stack pointer in *save, continue on the stack `to`. Defined
// (in assembly) by the runtime library only: kernel modules see these types but never switch themselves.
extern "C" void tl_emu_switch(void** save, void* to);

namespace tl_emu {
struct Context { void* sp; };
// A fresh stack whose first switch "returns" into entry with the ABI's alignment (rsp % 16 == 8 at entry).
inline void context_init(Context* c, char* stack, size_t size, FiberEntry entry) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                                   // fake return address of entry (never used)
  *--sp = reinterpret_cast<void*>(entry);            // where the first switch returns to
  for (int i = 0; i < 6; ++i) *--sp = nullptr;       // rbp rbx r12-r15
  --sp;
  uint32_t csr[2] = {0x1f80u, 0x037fu};              // default MXCSR and x87 control word
  __builtin_memcpy(sp, csr, 8);
  c->sp = sp;
}
inline void context_switch(Context* from, Context* to) { tl_emu_switch(&from->sp, to->sp); }
}  // namespace tl_emu

#else
#include <ucontext.h>
namespace tl_emu {
struct Context { ucontext_t uc; };
inline void context_init(Context* c, char* stack, size_t size, FiberEntry entry) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = nullptr;
  makecontext(&c->uc, entry, 0);
}
inline void context_switch(Context* from, Context* to) { swapcontext(&from->uc, &to->uc); }
}  // namespace tl_emu
#endif
