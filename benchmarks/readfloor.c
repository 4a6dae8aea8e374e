/* The read floor: the cheapest loop that reads every record of a capture, as a libpcap program
 * would, touching each packet's first bytes (the Ethernet type and IP addresses). run_replay.py
 * compiles it (cc -O2 readfloor.c -lpcap; without libpcap: -DNO_LIBPCAP, a plain loop over a
 * classic pcap file read in 1 MB blocks) and runs it on the same file in the same run, so that
 * sgdp's figures can be quoted as a ratio to it.
 *
 * Prints: packets seconds bytes_checksum
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#ifndef NO_LIBPCAP
#include <pcap/pcap.h>

int main(int argc, char **argv) {
    char err[PCAP_ERRBUF_SIZE];
    if (argc != 2) { fprintf(stderr, "usage: readfloor FILE\n"); return 2; }
    double t0 = now();
    pcap_t *p = pcap_open_offline(argv[1], err);
    if (!p) { fprintf(stderr, "readfloor: %s\n", err); return 2; }
    struct pcap_pkthdr *h;
    const u_char *data;
    uint64_t n = 0, sum = 0;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        n++;
        if (h->caplen >= 34) sum += data[12] + data[23] + data[26] + data[33];
    }
    pcap_close(p);
    printf("%llu %.6f %llu\n", (unsigned long long)n, now() - t0, (unsigned long long)sum);
    return rc == -1 ? 1 : 0;
}
#else
int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: readfloor FILE\n"); return 2; }
    double t0 = now();
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror("readfloor"); return 2; }
    size_t cap = 1 << 20, len = 0, pos = 24;
    unsigned char *buf = malloc(cap);
    uint64_t n = 0, sum = 0;
    len = fread(buf, 1, cap, f);
    if (len < 24) { fprintf(stderr, "readfloor: not a pcap file\n"); return 2; }
    for (;;) {
        if (len - pos < 16 || len - pos < 16 + (size_t)(buf[pos + 8] | buf[pos + 9] << 8 | buf[pos + 10] << 16 | (uint32_t)buf[pos + 11] << 24)) {
            memmove(buf, buf + pos, len - pos);
            len -= pos;
            pos = 0;
            size_t got = fread(buf + len, 1, cap - len, f);
            if (got == 0) break;
            len += got;
            continue;
        }
        uint32_t incl = buf[pos + 8] | buf[pos + 9] << 8 | buf[pos + 10] << 16 | (uint32_t)buf[pos + 11] << 24;
        const unsigned char *d = buf + pos + 16;
        if (incl >= 34) sum += d[12] + d[23] + d[26] + d[33];
        n++;
        pos += 16 + incl;
    }
    printf("%llu %.6f %llu\n", (unsigned long long)n, now() - t0, (unsigned long long)sum);
    return 0;
}
#endif
