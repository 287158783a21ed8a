/* Declarations the test drivers need, written here from the WDK documentation (no WDK headers
 * on this machine): the pool allocators of ntoskrnl.exe and ndis.sys, with their documented
 * argument orders. NTAPI is __stdcall on x86 and ignored on x64. */
#ifndef POOL_SITES_H
#define POOL_SITES_H

#define NTAPI __stdcall
#define IMPORT __declspec(dllimport)

typedef unsigned long ULONG;
typedef unsigned short USHORT;
typedef long NTSTATUS;
#ifdef _WIN64
typedef unsigned long long SIZE_T;
#else
typedef unsigned long SIZE_T;
#endif
typedef unsigned long long POOL_FLAGS;
typedef int POOL_TYPE;

/* POOL_TYPE values (wdm.h). */
#define NonPagedPool 0
#define PagedPool 1
#define NonPagedPoolNx 512
/* POOL_FLAGS bits (wdm.h). */
#define POOL_FLAG_UNINITIALIZED 0x2ULL
#define POOL_FLAG_NON_PAGED 0x40ULL
#define POOL_FLAG_PAGED 0x100ULL
#define NormalPoolPriority 16

/* Lookaside lists are opaque to the driver: big enough, 16-byte aligned. */
typedef struct { __declspec(align(16)) unsigned char opaque[128]; } LOOKASIDE;

IMPORT void *NTAPI ExAllocatePoolWithTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
IMPORT void *NTAPI ExAllocatePoolWithQuotaTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag);
IMPORT void *NTAPI ExAllocatePoolWithTagPriority(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag,
                                                 int Priority);
IMPORT void *NTAPI ExAllocatePool(POOL_TYPE PoolType, SIZE_T NumberOfBytes);
IMPORT void *NTAPI ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag);
IMPORT void NTAPI ExFreePoolWithTag(void *P, ULONG Tag);
IMPORT void NTAPI ExInitializeNPagedLookasideList(LOOKASIDE *Lookaside, void *Allocate, void *Free,
                                                  ULONG Flags, SIZE_T Size, ULONG Tag, USHORT Depth);
IMPORT void NTAPI ExInitializePagedLookasideList(LOOKASIDE *Lookaside, void *Allocate, void *Free,
                                                 ULONG Flags, SIZE_T Size, ULONG Tag, USHORT Depth);
IMPORT NTSTATUS NTAPI ExInitializeLookasideListEx(LOOKASIDE *Lookaside, void *Allocate, void *Free,
                                                  POOL_TYPE PoolType, ULONG Flags, SIZE_T Size,
                                                  ULONG Tag, USHORT Depth);
IMPORT NTSTATUS NTAPI RtlGetVersion(ULONG *VersionInformation);
IMPORT void *NTAPI NdisAllocateMemoryWithTagPriority(void *NdisHandle, unsigned int Length, ULONG Tag,
                                                     int Priority);
/* Declared without dllimport: the linker calls it through an import thunk (`jmp [IAT slot]`). */
void *NTAPI ExAllocatePoolWithQuota(POOL_TYPE PoolType, SIZE_T NumberOfBytes);

#endif
