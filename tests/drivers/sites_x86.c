/* The x86 (32-bit, stdcall) counterpart of sites_x64.c: arguments are pushed, last to first.
 * Same annotations (`site:`, `not-a-site:`), read by tests/alloc_sites_real.rs as the truth.
 * Never called: it is only compiled and linked. */
#include "pool_sites.h"

#define TAG(a, b, c, d) ((ULONG)(a) | ((ULONG)(b) << 8) | ((ULONG)(c) << 16) | ((ULONG)(d) << 24))
#define NOINLINE __declspec(noinline)

POOL_TYPE ExDefaultNonPagedPoolType = NonPagedPool;
ULONG ExDefaultMdlProtection = 0;

LOOKASIDE NpLookaside, ExLookaside;
void *Keep[32];
void *NdisHandle;
volatile ULONG Logged[3];

NOINLINE void *NTAPI MyAlloc(SIZE_T size) {
    return ExAllocatePoolWithTag(NonPagedPoolNx, size, TAG('W', 'r', 'p', 'A')); /* site: fn=MyAlloc tag=WrpA pool=nonpaged */
}

NOINLINE void *NTAPI MyAllocTagged(POOL_TYPE type, SIZE_T size, ULONG tag) {
    if (size == 0)
        return 0;
    return ExAllocatePoolWithTag(type, size, tag);
}

NOINLINE void NTAPI Log(ULONG level, ULONG id, ULONG code) {
    Logged[0] = level;
    Logged[1] = id;
    Logged[2] = code;
}

NOINLINE void SeveralSites(void) {
    Keep[0] = ExAllocatePoolWithTag(PagedPool, 0x40, TAG('S', 'm', 'p', '1')); /* site: fn=SeveralSites tag=Smp1 size=0x40 pool=paged */
    Keep[1] = ExAllocatePoolWithTag(NonPagedPoolNx, 0x1e8, TAG('S', 'm', 'p', '2')); /* site: fn=SeveralSites tag=Smp2 size=0x1e8 pool=nonpaged */
    Keep[2] = ExAllocatePoolWithQuotaTag(PagedPool, 0x58, TAG('Q', 'u', 'o', 't')); /* site: fn=SeveralSites tag=Quot size=0x58 pool=paged */
}

NOINLINE void ComputedSize(ULONG count) {
    Keep[4] = ExAllocatePoolWithTag(PagedPool, count * 24 + 16, TAG('C', 'o', 'm', 'p')); /* site: fn=ComputedSize tag=Comp pool=paged */
}

NOINLINE void Untagged(void) {
    Keep[5] = ExAllocatePool(NonPagedPool, 0x100); /* site: fn=Untagged tag=None size=0x100 pool=nonpaged */
    Keep[6] = ExAllocatePoolWithQuota(PagedPool, 0x30); /* site: fn=Untagged tag=None size=0x30 pool=paged */
}

NOINLINE void Pool2(void) {
    Keep[7] = ExAllocatePool2(POOL_FLAG_NON_PAGED, 0x30, TAG('P', 'l', '2', 'N')); /* site: fn=Pool2 tag=Pl2N size=0x30 pool=nonpaged */
}

NOINLINE void DefaultType(void) {
    Keep[9] = ExAllocatePoolWithTag(ExDefaultNonPagedPoolType, 0x50, TAG('D', 'f', 'l', 't')); /* site: fn=DefaultType tag=Dflt size=0x50 pool=nonpaged */
}

NOINLINE void Lookasides(void) {
    ExInitializeNPagedLookasideList(&NpLookaside, 0, 0, 0, 0x60, TAG('L', 'k', 'N', 'P'), 0); /* site: fn=Lookasides tag=LkNP size=0x60 pool=nonpaged */
    ExInitializeLookasideListEx(&ExLookaside, 0, 0, PagedPool, 0, 0x90, TAG('L', 'k', 'E', 'x'), 0); /* site: fn=Lookasides tag=LkEx size=0x90 pool=paged */
}

NOINLINE void Ndis(void) {
    Keep[10] = NdisAllocateMemoryWithTagPriority(NdisHandle, 0x120, TAG('N', 'd', 'i', 's'), NormalPoolPriority); /* site: fn=Ndis tag=Ndis size=0x120 pool=nonpaged */
}

NOINLINE void Wrappers(ULONG n) {
    Keep[11] = MyAlloc(0x40); /* site: fn=Wrappers tag=WrpA size=0x40 pool=nonpaged via=MyAlloc */
    Keep[13] = MyAllocTagged(PagedPool, 0x80, TAG('W', 'r', 'p', 'B')); /* site: fn=Wrappers tag=WrpB size=0x80 pool=paged via=MyAllocTagged */
}

NOINLINE void NotSites(void *p, ULONG tag) {
    ExFreePoolWithTag(p, TAG('L', 'e', 'a', 'k')); /* not-a-site: tag=Leak */
    if (tag == TAG('C', 'm', 'p', 'r')) /* not-a-site: tag=Cmpr */
        Log(1, 2, TAG('N', 'o', 't', 'A')); /* not-a-site: tag=NotA */
}

NTSTATUS NTAPI DriverEntry(void *DriverObject, void *RegistryPath) {
    ULONG v[70];
    v[0] = sizeof(v);
    if (RtlGetVersion(v) >= 0 && (v[1] > 6 || (v[1] == 6 && v[2] >= 2))) {
        ExDefaultNonPagedPoolType = NonPagedPoolNx;
        ExDefaultMdlProtection = 0x40000000;
    }
    SeveralSites();
    ComputedSize((ULONG)RegistryPath);
    Untagged();
    Pool2();
    DefaultType();
    Lookasides();
    Ndis();
    Wrappers((ULONG)DriverObject);
    NotSites(Keep[0], (ULONG)DriverObject);
    return 0;
}
