// Tests of src/common.c's machine probe: dino_other_running_tasks counts the
// runnable threads of the machine other than the caller, so a thread that
// spins beside the test must be counted.
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "common.h"
#include "testlib.h"

static atomic_int g_stop;

static void *spin(void *arg) {
    (void)arg;
    while (!atomic_load(&g_stop)) {
    }
    return NULL;
}

int main(void) {
    int idle = dino_other_running_tasks();
    CHECK(idle >= 0, "/proc/loadavg is read (%d other runnable tasks)", idle);

    pthread_t t;
    pthread_create(&t, NULL, spin, NULL);
    usleep(20000);
    int busy = dino_other_running_tasks();
    atomic_store(&g_stop, 1);
    pthread_join(t, NULL);
    CHECK(busy >= 1, "a spinning thread is counted (%d other runnable tasks)", busy);
    return test_finish();
}
