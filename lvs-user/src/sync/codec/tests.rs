//! The wire format against fixtures transcribed by hand, byte by byte,
//! from the struct layouts of the kernel's `net/netfilter/ipvs/ip_vs_sync.c`
//! (`struct ip_vs_sync_mesg`, `ip_vs_sync_v4`, `ip_vs_sync_v6`, the option
//! encoding of `ip_vs_sync_conn`) and the `IP_VS_CONN_F_*` values of
//! `include/uapi/linux/ip_vs.h`. They are not produced by this encoder, and
//! not captured from a kernel: the test machines' kernel has no IPVS to
//! capture sync traffic from. Each line of a fixture is commented with the
//! fields it holds.

use super::*;

/// Hex bytes, each line's `#` starting a comment.
fn hex(s: &str) -> Vec<u8> {
    s.lines()
        .flat_map(|l| l.split('#').next().unwrap_or("").split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

/// Header + one 36-byte IPv4 entry, no options: a DR connection.
fn fixture_v4() -> Vec<u8> {
    hex("
        00 05 00 2c  01 01 00 00  # reserved 0, syncid 5, size 44; nr_conns 1, version 1, spare 0
        00 06 00 24  00 00 00 83  # type 0 (IPv4), TCP, ver_size 36; flags DROUTE|NOOUTPUT
        00 01 9c 40  00 50 1f 90  # state 1 (ESTABLISHED), cport 40000; vport 80, dport 8080
        00 00 00 00  00 00 03 84  # fwmark 0; timeout 900 s
        0a 00 00 02               # caddr 10.0.0.2
        c0 a8 01 64               # vaddr 192.168.1.100
        c0 a8 02 0a               # daddr 192.168.2.10
    ")
}

fn entry_v4() -> Entry {
    Entry {
        protocol: 6,
        flags: flags::DROUTE | flags::NOOUTPUT,
        state: 1,
        cport: 40000,
        vport: 80,
        dport: 8080,
        fwmark: 0,
        timeout: 900,
        caddr: "10.0.0.2".parse().unwrap(),
        vaddr: "192.168.1.100".parse().unwrap(),
        daddr: "192.168.2.10".parse().unwrap(),
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

/// Header + one 72-byte IPv6 entry, no options: a NAT UDP flow.
fn fixture_v6() -> Vec<u8> {
    hex("
        00 07 00 50  01 01 00 00  # syncid 7, size 80; nr_conns 1, version 1
        01 11 00 48  00 00 01 00  # type 1 (IPv6), UDP, ver_size 72; flags MASQ|INACTIVE
        00 00 14 e9  00 35 00 35  # state 0 (UDP's only one), cport 5353; vport 53, dport 53
        00 00 00 00  00 00 01 2c  # fwmark 0; timeout 300 s
        20 01 0d b8  00 00 00 00  00 00 00 00  00 00 00 02  # caddr 2001:db8::2
        20 01 0d b8  00 01 00 00  00 00 00 00  00 00 01 00  # vaddr 2001:db8:1::100
        20 01 0d b8  00 02 00 00  00 00 00 00  00 00 00 10  # daddr 2001:db8:2::10
    ")
}

fn entry_v6() -> Entry {
    Entry {
        protocol: 17,
        flags: flags::MASQ | flags::INACTIVE,
        state: 0,
        cport: 5353,
        vport: 53,
        dport: 53,
        fwmark: 0,
        timeout: 300,
        caddr: "2001:db8::2".parse().unwrap(),
        vaddr: "2001:db8:1::100".parse().unwrap(),
        daddr: "2001:db8:2::10".parse().unwrap(),
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

/// Two entries with options: an IPv4 NAT connection with the sequence
/// option (62 bytes, then 2 bytes of padding), and an IPv6 persistence
/// template with engine data and name (83 bytes).
fn fixture_options() -> Vec<u8> {
    hex("
        00 09 00 9b  02 01 00 00  # syncid 9, size 155 = 8 + 62 + 2 + 83; nr_conns 2, version 1
        00 06 00 3e  00 00 06 00  # IPv4, TCP, ver_size 62 = 36 + 2 + 24; flags MASQ|OUT_SEQ|IN_SEQ
        00 01 c3 50  00 50 00 50  # state 1, cport 50000; vport 80, dport 80
        00 00 00 00  00 00 03 84  # fwmark 0; timeout 900 s
        0a 00 00 03               # caddr 10.0.0.3
        c0 a8 01 64               # vaddr 192.168.1.100
        c0 a8 02 0b               # daddr 192.168.2.11
        01 18                     # option SEQ_DATA, length 24
        00 00 03 e8  00 00 00 10  00 00 00 08  # in_seq: init 1000, delta 16, previous_delta 8
        00 00 07 d0  ff ff ff f0  00 00 00 00  # out_seq: init 2000, delta -16, previous_delta 0
        00 00                     # padding: the next entry starts at offset 72
        01 06 00 53  00 00 10 00  # IPv6, TCP, ver_size 83 = 72 + 6 + 5; flags TEMPLATE (MASQ)
        00 00 00 00  13 c4 13 c4  # state 0, cport 0; vport 5060, dport 5060
        00 00 00 00  00 00 01 68  # fwmark 0; timeout 360 s
        20 01 0d b8  00 00 00 00  00 00 00 00  00 00 00 03  # caddr 2001:db8::3
        20 01 0d b8  00 01 00 00  00 00 00 00  00 00 01 00  # vaddr 2001:db8:1::100
        20 01 0d b8  00 02 00 00  00 00 00 00  00 00 00 11  # daddr 2001:db8:2::11
        02 04 61 62  63 64        # option PE_DATA, length 4: abcd
        03 03 73 69  70           # option PE_NAME, length 3: sip
    ")
}

fn entries_options() -> [Entry; 2] {
    let a = Entry {
        protocol: 6,
        flags: flags::MASQ | flags::SEQ_MASK,
        state: 1,
        cport: 50000,
        vport: 80,
        dport: 80,
        fwmark: 0,
        timeout: 900,
        caddr: "10.0.0.3".parse().unwrap(),
        vaddr: "192.168.1.100".parse().unwrap(),
        daddr: "192.168.2.11".parse().unwrap(),
        seq: Some((
            Seq {
                init_seq: 1000,
                delta: 16,
                previous_delta: 8,
            },
            Seq {
                init_seq: 2000,
                delta: (-16i32) as u32,
                previous_delta: 0,
            },
        )),
        pe_data: None,
        pe_name: None,
    };
    let b = Entry {
        protocol: 6,
        flags: flags::TEMPLATE,
        state: 0,
        cport: 0,
        vport: 5060,
        dport: 5060,
        fwmark: 0,
        timeout: 360,
        caddr: "2001:db8::3".parse().unwrap(),
        vaddr: "2001:db8:1::100".parse().unwrap(),
        daddr: "2001:db8:2::11".parse().unwrap(),
        seq: None,
        pe_data: Some(b"abcd".to_vec()),
        pe_name: Some(b"sip".to_vec()),
    };
    [a, b]
}

fn encode_all(syncid: u8, maxlen: usize, es: &[Entry]) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(syncid, maxlen);
    let mut out: Vec<Vec<u8>> = es.iter().filter_map(|e| enc.push(e)).collect();
    out.extend(enc.finish());
    out
}

#[test]
fn fixtures_have_the_kernel_sizes() {
    assert_eq!(fixture_v4().len(), HEADER_LEN + V4_LEN);
    assert_eq!(fixture_v6().len(), HEADER_LEN + V6_LEN);
    assert_eq!(fixture_options().len(), 155);
}

#[test]
fn decodes_the_hand_made_fixtures() {
    let d = decode(&fixture_v4(), 5).unwrap();
    assert_eq!((d.syncid, d.skipped), (5, 0));
    assert_eq!(d.entries, vec![entry_v4()]);
    let d = decode(&fixture_v6(), 7).unwrap();
    assert_eq!(d.entries, vec![entry_v6()]);
    let d = decode(&fixture_options(), 9).unwrap();
    assert_eq!(d.entries, entries_options().to_vec());
    assert!(d.entries[1].is_template());
}

#[test]
fn encodes_byte_for_byte_as_the_fixtures() {
    assert_eq!(encode_all(5, 1472, &[entry_v4()]), vec![fixture_v4()]);
    assert_eq!(encode_all(7, 1472, &[entry_v6()]), vec![fixture_v6()]);
    assert_eq!(
        encode_all(9, 1472, &entries_options()),
        vec![fixture_options()]
    );
}

#[test]
fn a_backup_of_sync_id_zero_takes_any() {
    assert!(decode(&fixture_v4(), 0).is_ok());
    assert_eq!(decode(&fixture_v4(), 6), Err(Reject::OtherSyncId));
}

#[test]
fn messages_split_at_maxlen_and_255_entries() {
    // Room for the header and exactly two IPv4 entries.
    let es = vec![entry_v4(); 5];
    let msgs = encode_all(5, HEADER_LEN + 2 * V4_LEN, &es);
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs.iter().map(|m| m[4]).collect::<Vec<_>>(), vec![2, 2, 1]);
    for m in &msgs {
        assert!(m.len() <= HEADER_LEN + 2 * V4_LEN);
        assert_eq!(decode(m, 5).unwrap().entries.len(), m[4] as usize);
    }
    // The count is one byte: 300 entries are two messages however large.
    let msgs = encode_all(5, 65507, &vec![entry_v4(); 300]);
    assert_eq!(msgs.iter().map(|m| m[4]).collect::<Vec<_>>(), vec![255, 45]);
}

#[test]
fn broken_messages_are_rejected_whole() {
    let good = fixture_v4();
    // Shorter than the header.
    assert_eq!(decode(&good[..7], 5), Err(Reject::Truncated));
    // The datagram lost its tail: its size no longer matches...
    assert_eq!(decode(&good[..43], 5), Err(Reject::BadSize));
    // ...and with the size made to match, the entry runs past the end.
    let mut t = good[..43].to_vec();
    t[3] = 43;
    assert_eq!(decode(&t, 5), Err(Reject::Truncated));
    // Only the fixed part's first word present.
    let mut t = good[..12].to_vec();
    t[3] = 12;
    assert_eq!(decode(&t, 5), Err(Reject::Truncated));
    // A size field that is not the datagram's.
    let mut b = good.clone();
    b[3] = 0x2d;
    assert_eq!(decode(&b, 5), Err(Reject::BadSize));
    // Version 0 in the header, reserved or spare not zero.
    for (at, v) in [(5, 0u8), (5, 2), (0, 1), (7, 1)] {
        let mut b = good.clone();
        b[at] = v;
        assert_eq!(decode(&b, 5), Err(Reject::BadVersion), "byte {at} = {v}");
    }
    // An entry of version 1 (top nibble of ver_size).
    let mut b = good.clone();
    b[10] = 0x10;
    assert_eq!(decode(&b, 5), Err(Reject::BadVersion));
    // An unknown entry type.
    let mut b = good.clone();
    b[8] = 2;
    assert_eq!(decode(&b, 5), Err(Reject::Malformed));
    // An entry size below the fixed part (35).
    let mut b = good.clone();
    b[11] = 35;
    assert_eq!(decode(&b, 5), Err(Reject::Malformed));
    // An IPv4-sized entry claiming to be IPv6.
    let mut b = good.clone();
    b[8] = 1;
    assert_eq!(decode(&b, 5), Err(Reject::Malformed));
    // Bytes after the last entry.
    let mut b = good.clone();
    b.extend_from_slice(&[0; 4]);
    b[3] = 48;
    assert_eq!(decode(&b, 5), Err(Reject::Malformed));
    // Two entries announced, one present.
    let mut b = good.clone();
    b[4] = 2;
    assert_eq!(decode(&b, 5), Err(Reject::Truncated));
}

#[test]
fn broken_options_reject_the_message() {
    let opts = fixture_options();
    // The sequence option's length (byte 45) one short of 24.
    let mut b = opts.clone();
    b[45] = 23;
    assert_eq!(decode(&b, 9), Err(Reject::Malformed));
    // An option of length 0.
    let mut b = opts.clone();
    b[45] = 0;
    assert_eq!(decode(&b, 9), Err(Reject::Malformed));
    // An option running past its entry (PE name of length 4, 3 present).
    let mut b = opts.clone();
    b[151] = 4;
    assert_eq!(decode(&b, 9), Err(Reject::Malformed));
    // The sequence option given twice: the first entry with a second copy.
    let mut b = hex("00 09 00 60  01 01 00 00");
    b.extend_from_slice(&opts[8..8 + 62]);
    b.extend_from_slice(&opts[8 + 36..8 + 62]);
    b[8 + 3] = 88;
    assert_eq!(decode(&b, 9), Err(Reject::Malformed));
}

#[test]
fn unusable_entries_are_skipped_one_by_one() {
    // An IPv4 entry with an optional unknown parameter (type 0x45, 2 bytes
    // of data) is taken; with a mandatory unknown one (0x05), skipped.
    for (ptype, taken) in [(0x45u8, true), (0x05, false)] {
        let mut b = fixture_v4();
        b[3] = 48;
        b[11] = 40;
        b.extend_from_slice(&[ptype, 2, 0xaa, 0xbb]);
        let d = decode(&b, 5).unwrap();
        assert_eq!(d.entries.len(), taken as usize, "type {ptype:#x}");
        assert_eq!(d.skipped, !taken as u32);
        if taken {
            assert_eq!(d.entries[0], entry_v4());
        }
    }
    // A TCP state out of range (11), protocols without states (ICMPv6,
    // ICMP), a UDP state other than 0.
    for (at, v) in [(17usize, 11u8), (9, 58), (9, 1)] {
        let mut b = fixture_v4();
        b[at] = v;
        let d = decode(&b, 5).unwrap();
        assert_eq!((d.entries.len(), d.skipped), (0, 1), "byte {at} = {v}");
    }
    let mut b = fixture_v6();
    b[17] = 1;
    assert_eq!(decode(&b, 7).unwrap().skipped, 1);
    // Engine data without its name.
    let mut b = fixture_options();
    b.truncate(150);
    b[3] = 150;
    b[8 + 64 + 3] = 78;
    let d = decode(&b, 9).unwrap();
    assert_eq!((d.entries.len(), d.skipped), (1, 1));
}
