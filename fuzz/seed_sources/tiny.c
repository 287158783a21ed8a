typedef struct _LIST_ENTRY { struct _LIST_ENTRY *Flink, *Blink; } LIST_ENTRY;
typedef struct _POOL_HEADER { unsigned short PreviousSize : 8; unsigned short PoolIndex : 8; unsigned short BlockSize : 8; unsigned short PoolType : 8; unsigned long PoolTag; void *ProcessBilled; } POOL_HEADER;
typedef struct _POOL_TRACKER_BIG_PAGES { unsigned long long Va; unsigned long Key; unsigned long PoolType; unsigned long long NumberOfBytes; } POOL_TRACKER_BIG_PAGES;
POOL_TRACKER_BIG_PAGES *PoolBigPageTable;
unsigned long long PoolBigPageTableSize;
LIST_ENTRY PsLoadedModuleList;
POOL_HEADER Sample;
__declspec(dllimport) void *ExAllocatePoolWithTag(int type, unsigned long long size, unsigned long tag);
void *Alloc(unsigned long long n) { return ExAllocatePoolWithTag(1, n + sizeof(Sample), 'kaeL'); }
int DriverEntry(void *d, void *r) { PsLoadedModuleList.Flink = &PsLoadedModuleList; return Alloc(16) != 0; }
