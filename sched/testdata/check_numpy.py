#!/usr/bin/env python3
"""Optional cross-check of gen_reference.py against real numpy (not run by CI).

Needs numpy 1.x (checked with 1.24.2, Debian 12 python3-numpy, the version the
fixtures were made with). Runs diffusers' set_timesteps expressions verbatim in
numpy on the generator's emulated float32 training sigmas and compares them with
the generator's stdlib transcription for every step count 1-100 (LCM 1-50) and
spacing; also reports any DPM++ Karras timestep that would change if numpy's own
(SIMD, not always correctly rounded) float32 log were used for log_sigmas.

    python3 sched/testdata/check_numpy.py
"""
import sys, numpy as np, math
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
import gen_reference as g
SD = g.SD
bad = 0
N=1000
ac = g.alphas_cumprod(SD)
ts32 = np.array(g.train_sigmas(ac), dtype=np.float32)   # emulated torch part
log_np = np.log(ts32)                                     # real numpy float32 log
log_cr = np.array(g.log_sigmas_f32(list(map(float, ts32))), dtype=np.float32)
def np_sigma_to_t(sigma, log_sigmas):
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low_idx = np.cumsum((dists >= 0), axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low = log_sigmas[low_idx]; high = log_sigmas[high_idx]
    w = (low - log_sigma) / (low - high)
    w = np.clip(w, 0, 1)
    t = (1 - w) * low_idx + w * high_idx
    return t.reshape(sigma.shape)
def np_karras(in_sigmas, n):
    sigma_min = in_sigmas[-1].item(); sigma_max = in_sigmas[0].item()
    rho = 7.0
    ramp = np.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho); max_inv_rho = sigma_max ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
flips_np_log = []
for n in range(1, 101):
    for sp in ['linspace','leading','trailing']:
        c = dict(SD, timestep_spacing=sp)
        # Euler (diffusers code with numpy)
        if sp == 'linspace': t = np.linspace(0, N-1, n, dtype=np.float32)[::-1].copy()
        elif sp == 'leading': t = (np.arange(0, n) * (N//n)).round()[::-1].copy().astype(np.float32); t += 1
        else: t = np.arange(N, 0, -N/n).round().copy().astype(np.float32); t -= 1
        sig = np.interp(t, np.arange(0, N), ts32)
        et, es, ei = g.euler_schedule(c, n, False)
        if list(map(float,t)) != et or list(map(float, np.concatenate([sig,[0.0]]).astype(np.float32))) != es:
            bad += 1; print('euler', sp, n)
        ks = np_karras(sig, len(sig))
        kt = np.array([np_sigma_to_t(s, log_cr) for s in ks]).astype(np.float32)
        gt, gs, _ = g.euler_schedule(c, n, True)
        if list(map(float, kt.ravel())) != gt or list(map(float, np.concatenate([ks,[0.0]]).astype(np.float32))) != gs:
            bad += 1; print('euler karras', sp, n)
        # DPM
        if sp == 'linspace': t = np.linspace(0, N - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
        elif sp == 'leading': t = (np.arange(0, n + 1) * (N // (n + 1))).round()[::-1][:-1].copy().astype(np.int64); t += 1
        else: t = np.arange(N, 0, -N/n).round().copy().astype(np.int64); t -= 1
        dt, ds = g.dpm_schedule(c, n, False)
        if list(map(float, t)) != dt: bad += 1; print('dpm', sp, n)
        fs = np.flip(ts32).copy()
        ks = np_karras(fs, n)
        kt = np.array([np_sigma_to_t(s, log_cr) for s in ks]).round()
        kt_np = np.array([np_sigma_to_t(s, log_np) for s in ks]).round()
        dt, ds = g.dpm_schedule(c, n, True)
        if list(map(float, kt.ravel())) != dt or list(map(float, np.concatenate([ks,[0.0]]).astype(np.float32))) != ds: bad += 1; print('dpm karras', sp, n)
        if (kt != kt_np).any(): flips_np_log.append((sp, n))
        # DDIM
        if sp == 'linspace': t = np.linspace(0, N - 1, n).round()[::-1].copy().astype(np.int64)
        elif sp == 'leading': t = (np.arange(0, n) * (N//n)).round()[::-1].copy().astype(np.int64); t += 1
        else: t = np.round(np.arange(N, 0, -N/n)).astype(np.int64); t -= 1
        if list(map(float, t)) != g.ddim_timesteps(c, n): bad += 1; print('ddim', sp, n)
# LCM
for n in range(1, 51):
    k = N // 50
    o = np.asarray(list(range(1, 51))) * k - 1
    o = o[::-1].copy()
    idx = np.floor(np.linspace(0, len(o), num=n, endpoint=False)).astype(np.int64)
    if list(map(float, o[idx])) != g.lcm_timesteps(SD, n): bad += 1; print('lcm', n)
print('mismatches', bad)
print('dpm karras timesteps that change with numpy\'s own float32 log:', flips_np_log)
