/* The pod sandbox's pause process for the local kubelet (hack/testenv.py), built statically by
 * hack/build-images.sh into the image videojob-testenv/pause: it holds the pod's namespaces, blocks until
 * SIGINT or SIGTERM, and as PID 1 of the pod reaps any child handed to it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) {
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && argv[1][0] == '-' && argv[1][1] == 'v') {
        puts("videojob-testenv pause 3.10");
        return 0;
    }
    struct sigaction term = {.sa_handler = on_term}, child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGINT, &term, NULL) < 0 || sigaction(SIGTERM, &term, NULL) < 0 ||
        sigaction(SIGCHLD, &child, NULL) < 0) {
        perror("pause: sigaction");
        return 1;
    }
    if (getpid() != 1) {
        fputs("pause: warning: not PID 1; orphans are not reaped here\n", stderr);
    }
    for (;;) {
        pause();
    }
}
