/*
 * lifecycle_floor: what the kernel alone charges for the container
 * lifecycle the `throughput` example and the `lifecycle` bench measure.
 *
 * Each lifecycle makes the syscalls berth's start path makes for runc's
 * default spec (docs/ARCHITECTURE.md, "The kernel's floor"), and nothing
 * else: a cgroup in every hierarchy (cpuset copied from the parent);
 * clone3 with CLONE_VM, on a stack of its own, into the cgroup2 cgroup and
 * the pid, mount, net, uts and ipc namespaces; the child joining its v1
 * cgroups, a cgroup namespace, `lo` up, the spec's mounts, /dev's nodes
 * and links, pivot_root, the masked and read-only paths, a read-only
 * root, the hostname, the NOFILE limit, the capability sets,
 * no_new_privs, a seccomp filter as long as berth's default one (343
 * instructions), and exec of /bin/true; then the parent waits through a
 * pidfd and removes the cgroups. No state files, no create/start split,
 * no supervisor, no runtime: what berth does beyond this is its own cost.
 *
 * `cargo xtask floor [--in-flight M] [--count N]` builds and runs it, or:
 * cc -O2 -pthread -o /tmp/lifecycle_floor benches/floor/lifecycle_floor.c
 * /tmp/lifecycle_floor ROOTFS [IN_FLIGHT [COUNT]]
 *
 * ROOTFS holds /bin/true (the fixtures' busybox rootfs:
 * target/berth-fixtures/rootfs). IN_FLIGHT threads (default 1) each run
 * lifecycles one after the other until COUNT (default 2000) are done,
 * after a warm-up of IN_FLIGHT. It prints the median and p90 of one
 * lifecycle's wall time, and, as its last line,
 * `floor: N lifecycles/s at M in flight`. Run as root; it removes every
 * cgroup it made, and its mounts die with their mount namespaces.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_HIER 16
#define FILTER_LEN 343

struct hierarchy {
    char mount_point[256]; /* /sys/fs/cgroup/memory */
    char options[128];     /* what to mount inside: "memory", "name=systemd" */
    char name[64];         /* the directory under /sys/fs/cgroup inside */
    int is_cgroup2;
};

static struct hierarchy hier[MAX_HIER];
static int n_hier;
static const char *rootfs;
static char parent[64];
static struct sock_filter filter[FILTER_LEN];
static atomic_int next_id;
/* A child failed: the threads finish the lifecycle they are in (its
 * cgroups removed) and take no other. */
static atomic_int failed;
static int count;
/* Per lifecycle, ms: the whole, then its three phases. */
static double *wall_ms, *make_ms, *run_ms, *remove_ms;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* The host's cgroup hierarchies, from /proc/self/mountinfo. */
static void find_hierarchies(void) {
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024];
    if (!f)
        die("mountinfo");
    while (fgets(line, sizeof line, f) && n_hier < MAX_HIER) {
        char mp[256], fstype[32], super[512];
        char *sep = strstr(line, " - ");
        if (!sep || sscanf(line, "%*s %*s %*s %*s %255s", mp) != 1 ||
            sscanf(sep + 3, "%31s %*s %511s", fstype, super) != 2)
            continue;
        struct hierarchy *h = &hier[n_hier];
        if (!strcmp(fstype, "cgroup2")) {
            h->is_cgroup2 = 1;
            h->options[0] = 0;
        } else if (!strcmp(fstype, "cgroup")) {
            /* The controllers among the super options (rw, xattr, … left out). */
            char *save, *opt;
            h->options[0] = 0;
            for (opt = strtok_r(super, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
                if (!strcmp(opt, "rw") || !strcmp(opt, "ro") || !strcmp(opt, "xattr") ||
                    !strncmp(opt, "release_agent", 13) || !strcmp(opt, "clone_children"))
                    continue;
                if (h->options[0])
                    strcat(h->options, ",");
                strcat(h->options, opt);
            }
        } else {
            continue;
        }
        snprintf(h->mount_point, sizeof h->mount_point, "%s", mp);
        snprintf(h->name, sizeof h->name, "%s", strrchr(mp, '/') + 1);
        n_hier++;
    }
    fclose(f);
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) < 0)
        die(path);
    close(fd);
}

static void copy_file(const char *from, const char *to) {
    char buf[256];
    int fd = open(from, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (n < 0)
        die(from);
    close(fd);
    buf[n] = 0;
    write_file(to, buf);
}

/* mkdir of the cgroup `rel` in every hierarchy; v1 cpuset gets its
 * parent's cpus and mems, as cgroups-rs copies them. */
static void make_cgroup(const char *rel, const char *parent_rel) {
    for (int i = 0; i < n_hier; i++) {
        char dir[8192], from[8192], to[8192];
        if (snprintf(dir, sizeof dir, "%s/%s", hier[i].mount_point, rel) >= (int)sizeof dir)
            die("cgroup path");
        if (mkdir(dir, 0755) && errno != EEXIST)
            die(dir);
        if (!hier[i].is_cgroup2 && strstr(hier[i].options, "cpuset")) {
            for (int k = 0; k < 2; k++) {
                const char *file = k ? "cpuset.mems" : "cpuset.cpus";
                if (snprintf(from, sizeof from, "%s/%s/%s", hier[i].mount_point, parent_rel,
                             file) >= (int)sizeof from ||
                    snprintf(to, sizeof to, "%s/%s", dir, file) >= (int)sizeof to)
                    die("cpuset path");
                copy_file(from, to);
            }
        }
    }
}

static void remove_cgroup(const char *rel) {
    for (int i = 0; i < n_hier; i++) {
        char dir[8192];
        if (snprintf(dir, sizeof dir, "%s/%s", hier[i].mount_point, rel) >= (int)sizeof dir)
            die("cgroup path");
        /* A process just reaped may still be leaving: retry briefly. */
        for (int tries = 0; rmdir(dir) && errno == EBUSY && tries < 2000; tries++)
            usleep(100);
    }
}

/* A filter of berth's default length: the architecture check, then a
 * comparison for each of the first syscall numbers, and the rest allowed
 * too. Loading it (verifier, JIT, the kernel's per-syscall cache of
 * constant results) costs what loading berth's does; what it allows does
 * not matter to /bin/true. */
static void build_filter(void) {
    int i = 0;
    filter[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 4); /* arch */
    filter[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xc000003e, 1, 0);
    filter[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    filter[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0); /* nr */
    for (unsigned nr = 0; i + 2 < FILTER_LEN; nr++) {
        filter[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1);
        filter[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
    while (i < FILTER_LEN)
        filter[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
}

/* Everything the child needs, made before the clone: after it only
 * syscalls run (other threads may hold malloc's locks). */
struct child_args {
    int tasks_fd[MAX_HIER];
    char paths[64][256];
};

#define CHECK(call)                                                                                \
    do {                                                                                           \
        if ((call) < 0)                                                                            \
            _exit(100 + __LINE__ % 100);                                                           \
    } while (0)

static void in_root(char *out, const char *rel) {
    snprintf(out, 256, "%s/%s", rootfs, rel);
}

static void child(struct child_args *a) {
    for (int i = 0; i < n_hier; i++)
        if (a->tasks_fd[i] >= 0)
            CHECK(write(a->tasks_fd[i], "0", 1));
    CHECK(unshare(CLONE_NEWCGROUP));
    CHECK(setsid());
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    CHECK(ioctl(s, SIOCGIFFLAGS, &ifr));
    ifr.ifr_flags |= IFF_UP;
    CHECK(ioctl(s, SIOCSIFFLAGS, &ifr));
    close(s);

    CHECK(mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL));
    CHECK(mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL));
    char p[256];
    in_root(p, "proc");
    CHECK(mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
    in_root(p, "dev");
    CHECK(mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"));
    in_root(p, "dev/pts");
    CHECK(mkdir(p, 0755));
    CHECK(mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620,gid=5"));
    in_root(p, "dev/shm");
    CHECK(mkdir(p, 0755));
    CHECK(mount("shm", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k"));
    in_root(p, "dev/mqueue");
    CHECK(mkdir(p, 0755));
    CHECK(mount("mqueue", p, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
    in_root(p, "sys");
    CHECK(mount("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
    in_root(p, "sys/fs/cgroup");
    CHECK(mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755"));
    unsigned long cg_flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME;
    for (int i = 0; i < n_hier; i++) {
        CHECK(mkdir(a->paths[i], 0755));
        if (hier[i].is_cgroup2)
            CHECK(mount("cgroup2", a->paths[i], "cgroup2", cg_flags, NULL));
        else
            CHECK(mount("cgroup", a->paths[i], "cgroup", cg_flags, hier[i].options));
    }
    in_root(p, "sys/fs/cgroup");
    CHECK(mount(NULL, p, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
    static const struct {
        const char *name;
        int major, minor;
    } nodes[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
                 {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
    for (unsigned i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        char dev[256];
        snprintf(dev, sizeof dev, "%s/dev/%s", rootfs, nodes[i].name);
        CHECK(mknod(dev, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)));
        CHECK(chown(dev, 0, 0));
        CHECK(chmod(dev, 0666));
    }
    static const char *links[][2] = {{"/proc/self/fd", "fd"},
                                     {"/proc/self/fd/0", "stdin"},
                                     {"/proc/self/fd/1", "stdout"},
                                     {"/proc/self/fd/2", "stderr"},
                                     {"pts/ptmx", "ptmx"}};
    for (int i = 0; i < 5; i++) {
        char link[256];
        snprintf(link, sizeof link, "%s/dev/%s", rootfs, links[i][1]);
        CHECK(symlink(links[i][0], link));
    }

    CHECK(chdir(rootfs));
    CHECK(syscall(SYS_pivot_root, ".", "."));
    CHECK(mount(NULL, ".", NULL, MS_REC | MS_SLAVE, NULL));
    CHECK(umount2(".", MNT_DETACH));
    CHECK(chdir("/"));

    static const char *masked_dirs[] = {"/proc/acpi", "/sys/firmware"};
    static const char *masked_files[] = {"/proc/kcore", "/proc/keys", "/proc/latency_stats",
                                         "/proc/timer_list", "/proc/timer_stats",
                                         "/proc/sched_debug"};
    for (int i = 0; i < 2; i++)
        if (access(masked_dirs[i], F_OK) == 0)
            CHECK(mount("tmpfs", masked_dirs[i], "tmpfs", MS_RDONLY, NULL));
    for (int i = 0; i < 6; i++)
        if (access(masked_files[i], F_OK) == 0)
            CHECK(mount("/dev/null", masked_files[i], NULL, MS_BIND, NULL));
    static const char *readonly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                     "/proc/sysrq-trigger"};
    for (int i = 0; i < 5; i++) {
        if (mount(readonly[i], readonly[i], NULL, MS_BIND | MS_REC, NULL))
            continue;
        CHECK(mount(NULL, readonly[i], NULL, MS_REMOUNT | MS_RDONLY | MS_BIND | MS_REC, NULL));
    }
    CHECK(mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_BIND, NULL));

    CHECK(sethostname("floor", 5));
    struct rlimit nofile = {1024, 1024};
    CHECK(setrlimit(RLIMIT_NOFILE, &nofile));
    CHECK(prctl(PR_SET_KEEPCAPS, 1));
    /* Raw syscalls: glibc's wrappers change the ids of every thread in
     * the thread list they see, and with CLONE_VM that list is the
     * parent's: they would signal the parent's threads. */
    CHECK(syscall(SYS_setgroups, 0, NULL));
    CHECK(syscall(SYS_setresgid, 0, 0, 0));
    CHECK(syscall(SYS_setresuid, 0, 0, 0));
    int keep[] = {CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE};
    for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
        if (cap != keep[0] && cap != keep[1] && cap != keep[2])
            CHECK(prctl(PR_CAPBSET_DROP, cap, 0, 0, 0));
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {0};
    for (int i = 0; i < 3; i++)
        data[0].effective |= 1u << keep[i];
    data[0].permitted = data[0].inheritable = data[0].effective;
    CHECK(syscall(SYS_capset, &hdr, data));
    CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
    for (int i = 0; i < 3; i++)
        CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, keep[i], 0, 0));
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    struct sock_fprog prog = {FILTER_LEN, filter};
    CHECK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog));
    char *argv[] = {"/bin/true", NULL};
    char *envp[] = {"PATH=/bin", NULL};
    execve("/bin/true", argv, envp);
    _exit(127);
}

/* clone3 with `args` (its stack set), the child running `fn(arg)` on
 * that stack, as berth's clone does: with CLONE_VM there is no copy of
 * this process to make, and `fn` must exec or _exit. */
static long clone3_run(struct clone_args *args, void (*fn)(struct child_args *),
                       struct child_args *arg) {
    long ret;
    register void (*r12)(struct child_args *) asm("r12") = fn;
    register struct child_args *r13 asm("r13") = arg;
    asm volatile("syscall\n\t"
                 "test %%rax, %%rax\n\t"
                 "jnz 1f\n\t"
                 "xor %%ebp, %%ebp\n\t"
                 "mov %%r13, %%rdi\n\t"
                 "call *%%r12\n\t"
                 "ud2\n\t"
                 "1:\n\t"
                 : "=a"(ret)
                 : "a"(SYS_clone3), "D"(args), "S"(sizeof *args), "r"(r12), "r"(r13)
                 : "rcx", "r11", "memory");
    return ret;
}

#define CHILD_STACK (256 * 1024)

static void lifecycle(int id) {
    static __thread char *stack;
    if (!stack) {
        stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
        if (stack == MAP_FAILED)
            die("child stack");
    }
    char rel[128];
    snprintf(rel, sizeof rel, "%s/c%d", parent, id);
    double t0 = now_ms();
    make_cgroup(rel, parent);
    double t1 = now_ms();
    struct child_args a;
    int cgroup2_fd = -1;
    for (int i = 0; i < n_hier; i++) {
        char path[8192];
        if (snprintf(path, sizeof path, "%s/%s/tasks", hier[i].mount_point, rel) >= (int)sizeof path)
            die("cgroup path");
        a.tasks_fd[i] = -1;
        if (hier[i].is_cgroup2) {
            *strrchr(path, '/') = 0;
            cgroup2_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (cgroup2_fd < 0)
                die(path);
        } else {
            a.tasks_fd[i] = open(path, O_WRONLY | O_CLOEXEC);
            if (a.tasks_fd[i] < 0)
                die(path);
        }
        snprintf(a.paths[i], sizeof a.paths[i], "%s/sys/fs/cgroup/%s", rootfs, hier[i].name);
    }
    int pidfd = -1;
    struct clone_args args = {
        .flags = CLONE_VM | CLONE_PIDFD | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID |
                 CLONE_NEWNET | (cgroup2_fd >= 0 ? CLONE_INTO_CGROUP : 0),
        .pidfd = (unsigned long)&pidfd,
        .exit_signal = 0,
        .stack = (unsigned long)stack,
        .stack_size = CHILD_STACK,
        .cgroup = cgroup2_fd >= 0 ? (unsigned)cgroup2_fd : 0,
    };
    if (clone3_run(&args, child, &a) < 0)
        die("clone3");
    siginfo_t info;
    if (waitid(P_PIDFD, pidfd, &info, WEXITED | __WALL) < 0)
        die("waitid");
    if (info.si_code != CLD_EXITED || info.si_status != 0) {
        fprintf(stderr, "lifecycle %d: child failed (code %d, status %d: the line %% 100 + 100)\n",
                id, info.si_code, info.si_status);
        atomic_store(&failed, 1);
    }
    close(pidfd);
    if (cgroup2_fd >= 0)
        close(cgroup2_fd);
    for (int i = 0; i < n_hier; i++)
        if (a.tasks_fd[i] >= 0)
            close(a.tasks_fd[i]);
    double t2 = now_ms();
    remove_cgroup(rel);
    double t3 = now_ms();
    make_ms[id] = t1 - t0;
    run_ms[id] = t2 - t1;
    remove_ms[id] = t3 - t2;
    wall_ms[id] = t3 - t0;
}

static void *worker(void *unused) {
    (void)unused;
    for (;;) {
        int id = atomic_fetch_add(&next_id, 1);
        if (id >= count || atomic_load(&failed))
            return NULL;
        lifecycle(id);
    }
}

static double run(int in_flight) {
    pthread_t threads[1024];
    double t0 = now_ms();
    for (int i = 0; i < in_flight; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < in_flight; i++)
        pthread_join(threads[i], NULL);
    return now_ms() - t0;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: lifecycle_floor ROOTFS [IN_FLIGHT [COUNT]]\n");
        return 2;
    }
    rootfs = argv[1];
    int in_flight = argc > 2 ? atoi(argv[2]) : 1;
    int total = argc > 3 ? atoi(argv[3]) : 2000;
    if (in_flight < 1 || in_flight > 1024 || total < 1) {
        fprintf(stderr, "usage: lifecycle_floor ROOTFS [IN_FLIGHT (1-1024) [COUNT]]\n");
        return 2;
    }
    find_hierarchies();
    build_filter();
    snprintf(parent, sizeof parent, "lifecycle-floor-%d", getpid());
    make_cgroup(parent, "");
    size_t n = total > in_flight ? total : in_flight;
    wall_ms = calloc(n, sizeof *wall_ms);
    make_ms = calloc(n, sizeof *make_ms);
    run_ms = calloc(n, sizeof *run_ms);
    remove_ms = calloc(n, sizeof *remove_ms);

    count = in_flight; /* warm-up */
    run(in_flight);
    atomic_store(&next_id, 0);
    count = total;
    double took = atomic_load(&failed) ? 0 : run(in_flight);

    remove_cgroup(parent);
    if (atomic_load(&failed))
        return 1;
    struct {
        const char *name;
        double *ms;
    } lines[] = {{"one lifecycle", wall_ms},
                 {"  cgroups made", make_ms},
                 {"  clone3 to the exit of /bin/true", run_ms},
                 {"  cgroups removed", remove_ms}};
    printf("%d hierarchies, %d lifecycles, ms:\n", n_hier, total);
    for (int i = 0; i < 4; i++) {
        qsort(lines[i].ms, total, sizeof(double), by_value);
        printf("%s: median %.3f, p90 %.3f\n", lines[i].name, lines[i].ms[total / 2],
               lines[i].ms[total * 9 / 10]);
    }
    printf("floor: %.0f lifecycles/s at %d in flight\n", total / took * 1e3, in_flight);
    return 0;
}
