#! /bin/sh
# LVS-TUN director on the same LAN as lvs_dr.sh; the real servers run
# `lvs decap` instead of an ipip tunl0 device; ipvsadm is lvsadm.
set -e

VIP=192.168.47.200
RIP1=192.168.47.129
RIP2=192.168.47.130

# no forwarding, as the HOWTO's director: only LVS-NAT routes through it
# (lvs load keeps the real servers' next hops for DR and TUN)
echo 0 > /proc/sys/net/ipv4/ip_forward

echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects
echo 0 > /proc/sys/net/ipv4/conf/eth0/send_redirects

# the VIP, an extra host address on eth0
ip addr add $VIP/32 dev eth0

IPVSADM='lvsadm'
$IPVSADM -C
$IPVSADM -A -t $VIP:80 -s rr
$IPVSADM -a -t $VIP:80 -r $RIP1:80 -i -w 1
$IPVSADM -a -t $VIP:80 -r $RIP2:80 -i -w 1
