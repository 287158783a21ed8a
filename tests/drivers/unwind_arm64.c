/* Functions whose prologs cover the ARM64 unwind forms, for tests/arm64_unwind.rs: a leaf
 * (no .pdata), canonical frames (packed .pdata), many callee-saved registers, float
 * callee-saved registers, a frame larger than 4 KiB (__chkstk), alloca (a frame pointer),
 * varargs (homed parameters) and a function with two epilogs. Calls go
 * big_frame -> with_alloca -> many_regs -> regs_packed -> leaf, a chain the test walks.
 * Nothing here runs: the image is read, not loaded. */

typedef unsigned long long u64;

volatile u64 sink;

/* The stack probe a frame over 4 KiB calls; its real one is in the kernel. */
void __chkstk(void) {}

__declspec(noinline) u64 leaf(u64 a) { return a * 3 + 1; }

__declspec(noinline) u64 regs_packed(u64 a, u64 b) {
    u64 c = a + 1, d = b + 2, e = a ^ b, f = a * b;
    sink = leaf(c);
    return c + d + e + f + sink;
}

__declspec(noinline) u64 many_regs(u64 a) {
    u64 v0 = a + 1, v1 = a * 3, v2 = a ^ 0x55, v3 = a + 7, v4 = a * 11, v5 = a - 13;
    u64 v6 = a ^ 0xAA, v7 = a + 17, v8 = a * 19, v9 = a - 23;
    sink = regs_packed(a, v0);
    sink = leaf(v1 + v2);
    return v0 + v1 * v2 + v3 * v4 + v5 * v6 + v7 * v8 + v9 + sink;
}

__declspec(noinline) double floats(double x, double y) {
    double a = x * 2.5, b = y * 3.5, c = x + y, d = x - y, e = x * y;
    sink = leaf((u64)a);
    return a + b * c + d * e + (double)sink;
}

__declspec(noinline) u64 with_alloca(u64 n) {
    unsigned char *p = __builtin_alloca(n * 16 + 16);
    for (u64 i = 0; i < n; i++)
        p[i] = (unsigned char)i;
    sink = many_regs(p[n / 2]);
    return p[n - 1] + sink;
}

__declspec(noinline) u64 big_frame(u64 n) {
    volatile unsigned char buf[8192];
    for (u64 i = 0; i < sizeof buf; i += 64)
        buf[i] = (unsigned char)(i ^ n);
    sink = with_alloca(buf[n & 8191] + 8);
    return buf[(n * 7) & 8191] + sink;
}

__declspec(noinline) u64 varargs(int n, ...) {
    __builtin_va_list ap;
    __builtin_va_start(ap, n);
    u64 s = 0;
    for (int i = 0; i < n; i++)
        s += __builtin_va_arg(ap, u64);
    __builtin_va_end(ap);
    sink = leaf(s);
    return s;
}

__declspec(noinline) u64 two_epilogs(u64 a) {
    if (a & 1)
        return a + 5;
    u64 x = a * 9, y = a * 5;
    sink = leaf(x);
    sink = leaf(y);
    return x + y + sink;
}

long DriverEntry(void *driver, void *registry) {
    (void)driver;
    (void)registry;
    sink = big_frame(sink) + floats((double)sink, 2.0) + varargs(3, sink, 2ull, 3ull) +
           two_epilogs(sink);
    return 0;
}
