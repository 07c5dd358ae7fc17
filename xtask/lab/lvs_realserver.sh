#! /bin/sh
# LVS-DR / LVS-TUN real server (the LVS HOWTO's recipe): the VIP on lo, so
# the server accepts packets for it and answers from it, and no ARP replies
# or announcements for it on the LAN, so that only the director answers.
# (TUN: the HOWTO puts the VIP on tunl0; with `lvs decap` stripping the
# outer header in XDP, lo serves for both methods.)
set -e

VIP=192.168.47.200

echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore
echo 2 > /proc/sys/net/ipv4/conf/all/arp_announce
echo 1 > /proc/sys/net/ipv4/conf/eth0/arp_ignore
echo 2 > /proc/sys/net/ipv4/conf/eth0/arp_announce

ip addr add $VIP/32 dev lo
