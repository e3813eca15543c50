//! The bind filter of `--container_ports_enforce_at_bind` (ours, beyond
//! Mesos): an eBPF program for the cgroup hooks `BPF_CGROUP_INET4_BIND` and
//! `BPF_CGROUP_INET6_BIND` that refuses `bind()` (with `EPERM`) to a port in
//! the isolated range that is not allocated to the container. It closes the
//! race that the `network/ports` documentation admits ("a sufficiently
//! malicious task [may] only listen on unassigned ports between
//! reconciliations", and nothing is enforced while the agent is down): the
//! kernel runs the program on every bind, with or without the agent.
//!
//! This module only writes the program (a pure function of two port sets);
//! [`crate::sys::Syscalls::attach_bind_filter`] loads and attaches it. The
//! program reads `bpf_sock_addr.user_port`, so it judges the port the caller
//! asked for: port 0 (let the kernel choose an ephemeral port) is allowed,
//! as Mesos's doc says executors need, and a listener on such a port is the
//! periodic scan's to find.

use super::ports::PortRanges;
use crate::sys::EbpfInstruction;

/// Offset of `user_port` in `struct bpf_sock_addr` (after `user_family`,
/// `user_ip4` and `user_ip6[4]`): a `__u32` holding the port in network byte
/// order in its first two bytes.
const USER_PORT_OFFSET: i16 = 24;

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU_END_TO_BE: u8 = 0xdc; // BPF_ALU | BPF_END | BPF_TO_BE
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP_JLT_K: u8 = 0xa5; // BPF_JMP | BPF_JLT | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// r0: the verdict; r1: the context; r2: the port.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;

/// What a bind hook returns: 1 lets `bind()` go on, 0 fails it with `EPERM`.
const ALLOW: i32 = 1;
const DENY: i32 = 0;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> EbpfInstruction {
    EbpfInstruction {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// Whether a bind to `port` is allowed: port 0 and allocated ports always,
/// other ports of the isolated range (`None`: every port) never, the rest
/// always.
fn allows(allowed: &PortRanges, isolated: Option<&PortRanges>, port: u16) -> bool {
    port == 0 || allowed.contains(port) || isolated.is_some_and(|range| !range.contains(port))
}

/// The verdict as a function of the port: the ports where it may change
/// (0, 1, and each range's first port and the one after its last), each
/// with the verdict from there on, consecutive equal verdicts merged.
fn segments(allowed: &PortRanges, isolated: Option<&PortRanges>) -> Vec<(u16, bool)> {
    let mut starts: Vec<u16> = vec![0, 1];
    for range in std::iter::once(allowed).chain(isolated) {
        for &(begin, end) in range.ranges() {
            starts.push(begin);
            starts.extend(end.checked_add(1));
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let mut out: Vec<(u16, bool)> = Vec::with_capacity(starts.len());
    for start in starts {
        let verdict = allows(allowed, isolated, start);
        if out.last().is_none_or(|&(_, last)| last != verdict) {
            out.push((start, verdict));
        }
    }
    out
}

/// A binary search over `segments` (sorted, the first starting at 0):
/// `if port < middle's start: left half, else right half`, down to one
/// segment, whose verdict is returned. Jumps only go forward (the right half
/// falls through, the jump skips it to the left half), so the verifier walks
/// each of the n paths once, about log2(n) jumps deep.
fn search(segments: &[(u16, bool)]) -> Result<Vec<EbpfInstruction>, String> {
    if let [(_, verdict)] = segments {
        let verdict = if *verdict { ALLOW } else { DENY };
        return Ok(vec![
            insn(ALU64_MOV_K, R0, 0, 0, verdict),
            insn(JMP_EXIT, 0, 0, 0, 0),
        ]);
    }
    let mid = segments.len() / 2;
    let right = search(&segments[mid..])?;
    let left = search(&segments[..mid])?;
    let skip = i16::try_from(right.len()).map_err(|_| {
        format!(
            "{} port ranges make too large a bind filter",
            segments.len()
        )
    })?;
    let mut code = Vec::with_capacity(1 + right.len() + left.len());
    code.push(insn(JMP_JLT_K, R2, 0, skip, i32::from(segments[mid].0)));
    code.extend(right);
    code.extend(left);
    Ok(code)
}

/// The program: allow port 0 and every port in `allowed`; refuse every other
/// port in `isolated` (`None`: every port); allow the rest. A binary search
/// over the ranges, so 4,096 allocated ranges (the agent's cap on a resource
/// list) against as many isolated ones stay within the verifier's limits;
/// beyond that (not reachable through the agent) it is an error.
pub fn program(
    allowed: &PortRanges,
    isolated: Option<&PortRanges>,
) -> Result<Vec<EbpfInstruction>, String> {
    let mut code = vec![
        insn(LDX_MEM_W, R2, R1, USER_PORT_OFFSET, 0),
        insn(ALU_END_TO_BE, R2, 0, 0, 16),
    ];
    code.extend(search(&segments(allowed, isolated))?);
    Ok(code)
}

/// A program that allows every bind: what the agent loads at startup to
/// learn whether the kernel can run bind filters at all.
pub fn allow_all() -> Vec<EbpfInstruction> {
    let mut code = vec![
        insn(LDX_MEM_W, R2, R1, USER_PORT_OFFSET, 0),
        insn(ALU_END_TO_BE, R2, 0, 0, 16),
    ];
    code.extend([
        insn(ALU64_MOV_K, R0, 0, 0, ALLOW),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ]);
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs `program` as the kernel would on a little-endian machine, for a
    /// bind to `port`: an interpreter of exactly the instructions above, so
    /// the program's verdicts are tested without the kernel (the agent's
    /// integration tests run it in the kernel).
    fn run(program: &[EbpfInstruction], port: u16) -> i32 {
        let mut ctx = [0u8; 64];
        ctx[USER_PORT_OFFSET as usize..USER_PORT_OFFSET as usize + 2]
            .copy_from_slice(&port.to_be_bytes());
        let mut regs = [0u64; 11];
        // r1 holds the context: a marker, so a load through anything else fails.
        regs[R1 as usize] = u64::MAX;
        let mut pc = 0usize;
        for _ in 0..100_000 {
            let i = program[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            assert_eq!(src, if i.code == LDX_MEM_W { R1 as usize } else { 0 });
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(regs[src], u64::MAX, "loads only from the context");
                    let at = i.off as usize;
                    let bytes: [u8; 4] = ctx[at..at + 4].try_into().expect("4 bytes");
                    regs[dst] = u64::from(u32::from_le_bytes(bytes));
                }
                ALU_END_TO_BE => {
                    assert_eq!(i.imm, 16);
                    regs[dst] = u64::from((regs[dst] as u16).swap_bytes());
                }
                ALU64_MOV_K => regs[dst] = i.imm as i64 as u64,
                JMP_JLT_K => {
                    if regs[dst] < i.imm as i64 as u64 {
                        assert!(i.off >= 0, "forward jumps only");
                        pc += i.off as usize;
                    }
                }
                JMP_EXIT => return regs[R0 as usize] as i32,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
        panic!("the program did not exit");
    }

    /// The policy, written out independently of `allows`.
    fn expected(allowed: &PortRanges, isolated: Option<&PortRanges>, port: u16) -> i32 {
        let refused = port != 0
            && !allowed.contains(port)
            && isolated.is_none_or(|range| range.contains(port));
        if refused {
            DENY
        } else {
            ALLOW
        }
    }

    fn ranges(list: &[(u64, u64)]) -> PortRanges {
        PortRanges::from_ranges(list.iter().copied())
    }

    #[test]
    fn allocated_ports_and_port_zero_are_allowed_and_the_rest_of_the_isolated_range_refused() {
        let allowed = ranges(&[(31000, 31000), (31005, 31010)]);
        let isolated = ranges(&[(31000, 32000)]);
        let p = program(&allowed, Some(&isolated)).expect("program");
        for (port, verdict) in [
            (0, ALLOW),
            (30999, ALLOW),
            (31000, ALLOW),
            (31001, DENY),
            (31004, DENY),
            (31005, ALLOW),
            (31010, ALLOW),
            (31011, DENY),
            (32000, DENY),
            (32001, ALLOW),
            (8080, ALLOW),
            (65535, ALLOW),
        ] {
            assert_eq!(run(&p, port), verdict, "port {port}");
        }
    }

    #[test]
    fn without_an_isolated_range_every_unallocated_port_is_refused() {
        let p = program(&ranges(&[(8080, 8080)]), None).expect("program");
        assert_eq!(run(&p, 8080), ALLOW);
        assert_eq!(run(&p, 0), ALLOW);
        for port in [1, 22, 8079, 8081, 31000, 65535] {
            assert_eq!(run(&p, port), DENY, "port {port}");
        }
        let nothing = program(&PortRanges::default(), None).expect("program");
        assert_eq!(run(&nothing, 1), DENY);
        assert_eq!(run(&nothing, 0), ALLOW);
    }

    #[test]
    fn the_probe_program_allows_everything() {
        let p = allow_all();
        for port in [0, 1, 80, 31000, 65535] {
            assert_eq!(run(&p, port), ALLOW);
        }
    }

    /// 4,096 allocated ranges (the agent's cap) interleaved with 4,096
    /// isolated ones: the most segments the agent can ask for.
    fn at_the_cap() -> (PortRanges, PortRanges) {
        (
            PortRanges::from_ranges((0..4096u64).map(|i| (i * 16 + 1, i * 16 + 2))),
            PortRanges::from_ranges((0..4096u64).map(|i| (i * 16 + 5, i * 16 + 9))),
        )
    }

    #[test]
    fn the_program_is_a_shallow_search_even_at_the_resource_cap() {
        let (allowed, isolated) = at_the_cap();
        let p = program(&allowed, Some(&isolated)).expect("fits");
        assert!(p.len() < 60_000, "{} instructions", p.len());
        for port in [0, 1, 2, 3, 5, 9, 10, 17, 18, 21, 65535, 40000, 40001] {
            assert_eq!(
                run(&p, port),
                expected(&allowed, Some(&isolated), port),
                "port {port}"
            );
        }
    }

    #[test]
    fn the_kernel_verifies_the_program_from_one_range_to_the_resource_cap() {
        use crate::sys::{RealSyscalls, Syscalls};
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but we are not root"
            );
            eprintln!("skipped: loading BPF programs needs root");
            return;
        }
        let all = PortRanges::from_ranges([(1, 65535)]);
        let (many, interleaved) = at_the_cap();
        for n in [0u64, 1, 100, 4096] {
            let allowed = PortRanges::from_ranges((0..n).map(|i| (i * 10 + 1, i * 10 + 2)));
            for isolated in [None, Some(&all), Some(&PortRanges::default())] {
                RealSyscalls
                    .probe_bind_filter(&program(&allowed, isolated).expect("program"))
                    .unwrap_or_else(|e| panic!("{n} ranges, isolated {isolated:?}: {e}"));
            }
        }
        RealSyscalls
            .probe_bind_filter(&program(&many, Some(&interleaved)).expect("program"))
            .unwrap_or_else(|e| panic!("at the cap: {e}"));
    }

    proptest! {
        #[test]
        fn verdicts_match_the_policy_for_every_port(
            allowed in proptest::collection::vec((0u64..70_000, 0u64..300), 0..6),
            isolated in proptest::option::of(proptest::collection::vec((0u64..70_000, 0u64..3000), 0..4)),
            probes in proptest::collection::vec(any::<u16>(), 64),
        ) {
            let allowed = PortRanges::from_ranges(allowed.into_iter().map(|(b, n)| (b, b + n)));
            let isolated = isolated.map(|v| PortRanges::from_ranges(v.into_iter().map(|(b, n)| (b, b + n))));
            let p = program(&allowed, isolated.as_ref()).expect("program");
            let edges = allowed.ranges().iter().chain(isolated.iter().flat_map(|r| r.ranges()))
                .flat_map(|&(b, e)| [b.saturating_sub(1), b, e, e.saturating_add(1)]);
            for port in probes.into_iter().chain(edges).chain([0, 1, 65535]) {
                prop_assert_eq!(run(&p, port), expected(&allowed, isolated.as_ref(), port), "port {}", port);
            }
        }
    }
}
