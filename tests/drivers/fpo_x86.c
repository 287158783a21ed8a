/* x86 functions compiled without frame pointers: clang -O2 for i686 keeps no EBP chain and
 * describes each function's frame with FRAMEDATA records (program strings) in the PDB.
 * tests/fpo_real.rs lays a stack out through DriverEntry -> Outer -> Middle -> Leaf from
 * objdump's disassembly of this driver and walks it with those records.
 * Never run: only compiled and linked. */
typedef unsigned long ULONG;
typedef long NTSTATUS;
#define NOINLINE __declspec(noinline)

volatile ULONG Sink[64];

/* Locals on the stack (the volatile array), two stdcall parameters. */
NOINLINE ULONG __stdcall Leaf(ULONG a, ULONG b) {
    volatile ULONG local[6];
    for (int i = 0; i < 6; i++)
        local[i] = Sink[(a + i) & 63] ^ b;
    return local[a % 6] + *(volatile ULONG *)Sink[b & 63];
}

/* Values live across the call: callee-saved registers pushed in the prolog. */
NOINLINE ULONG __stdcall Middle(ULONG x) {
    ULONG keep1 = Sink[x & 63], keep2 = Sink[(x >> 3) & 63], keep3 = x * 7;
    ULONG r = Leaf(x, keep1 ^ keep3);
    Sink[1] = keep1 + r;
    Sink[2] = keep2 + keep3;
    return r ^ keep2;
}

/* cdecl, locals and saved registers together. */
NOINLINE ULONG __cdecl Outer(ULONG n, ULONG m) {
    volatile ULONG scratch[10];
    ULONG total = m;
    for (ULONG i = 0; i < n; i++) {
        scratch[i % 10] = total;
        total += Middle(i ^ total);
    }
    return total + scratch[n % 10];
}

NTSTATUS __stdcall DriverEntry(void *driver, void *registry) {
    return (NTSTATUS)Outer((ULONG)driver, (ULONG)registry) + 1;
}
