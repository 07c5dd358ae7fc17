/*
 * An LD_PRELOAD shim for the tests: answers the IPVS socket options
 * (IP_VS_SO_GET_* with an empty table of IPVS version 1.2.1, IP_VS_SO_SET_*
 * with success) so that Debian's ipvsadm, which initialises IPVS before it
 * parses its command line, gets to parsing on a kernel without IPVS. Every
 * other socket option goes to the C library.
 *
 * The numbers are the kernel's <linux/ip_vs.h> ABI: IP_VS_BASE_CTL is
 * 64 + 1024 + 64; the SET options run from it to +15, the GET options
 * from it to +7, GET_INFO (+1) being { version, size, num_services }.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define IPVS_BASE (64 + 1024 + 64)
#define IPVS_SET_LAST (IPVS_BASE + 15)
#define IPVS_GET_INFO (IPVS_BASE + 1)
#define IPVS_GET_LAST (IPVS_BASE + 7)

int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	static int (*next)(int, int, int, void *, socklen_t *);

	if (level == IPPROTO_IP && name >= IPVS_BASE && name <= IPVS_GET_LAST && val && len) {
		memset(val, 0, *len);
		if (name == IPVS_GET_INFO && *len >= 3 * sizeof(unsigned)) {
			unsigned *info = val;
			info[0] = 0x010201;
			info[1] = 4096;
		}
		return 0;
	}
	if (!next)
		next = (int (*)(int, int, int, void *, socklen_t *))dlsym(RTLD_NEXT, "getsockopt");
	return next(fd, level, name, val, len);
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	static int (*next)(int, int, int, const void *, socklen_t);

	if (level == IPPROTO_IP && name >= IPVS_BASE && name <= IPVS_SET_LAST)
		return 0;
	if (!next)
		next = (int (*)(int, int, int, const void *, socklen_t))dlsym(RTLD_NEXT, "setsockopt");
	return next(fd, level, name, val, len);
}
