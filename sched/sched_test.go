package sched

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/diffute/diffute"
)

func mustNew(t testing.TB, name string, cfg Config, steps int) Scheduler {
	t.Helper()
	s, err := New(name, cfg, steps)
	if err != nil {
		t.Fatalf("New(%q, %d): %v", name, steps, err)
	}
	return s
}

func turboConfig() Config {
	c := DefaultConfig()
	c.TimestepSpacing = "trailing"
	return c
}

// TestTurboEulerByHand pins the SDXL-Turbo schedule and one Euler step to
// numbers worked out by hand from the published figures.
func TestTurboEulerByHand(t *testing.T) {
	t.Parallel()
	s := mustNew(t, NameEuler, turboConfig(), 4)
	assertSeries(t, "timesteps", s.Timesteps(), []float64{999, 749, 499, 249}, 0)
	assertSeries(t, "sigmas", s.Sigmas(), []float64{14.6146, 4.0817, 1.6129, 0.6932, 0}, 1e-4)
	if got := s.InitNoiseSigma(); !closeRel(got, 14.6146, 1e-4) {
		t.Errorf("InitNoiseSigma = %v, want 14.6146 (trailing spacing: σ_max)", got)
	}
	if got, want := float64(s.ScaleModelInput(0)), 1/math.Sqrt(14.6146*14.6146+1); !closeRel(got, want, 1e-4) {
		t.Errorf("ScaleModelInput(0) = %v, want %v", got, want)
	}
	// Epsilon: x0 = x − σ·m, so x' = x + m·(σ1 − σ0) = 1 + 0.5·(4.0817 − 14.6146).
	sample := []float32{1, -2}
	if err := s.Step(0, []float32{0.5, 0}, sample, nil); err != nil {
		t.Fatal(err)
	}
	assertSeries(t, "sample", float64s(sample), []float64{1 + 0.5*(4.0817-14.6146), -2}, 1e-4)
}

func TestNewPicksFromClassName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		class  string
		karras bool
		want   string
	}{
		{"EulerDiscreteScheduler", false, NameEuler},
		{"EulerAncestralDiscreteScheduler", false, NameEulerAncestral},
		{"DPMSolverMultistepScheduler", false, NameDPMPP2M},
		{"DPMSolverMultistepScheduler", true, NameDPMPP2MKarras},
		{"DDIMScheduler", false, NameDDIM},
		{"LCMScheduler", false, NameLCM},
		{"PNDMScheduler", false, NameEuler},
		{"LMSDiscreteScheduler", true, NameEuler},
		{"", false, NameEuler},
	}
	for _, tc := range tests {
		cfg := DefaultConfig()
		cfg.ClassName, cfg.UseKarrasSigmas = tc.class, tc.karras
		if got := mustNew(t, "", cfg, 4).Name(); got != tc.want {
			t.Errorf("class %q karras=%v: got %q, want %q", tc.class, tc.karras, got, tc.want)
		}
	}
	// An explicit name wins over the class and over use_karras_sigmas.
	cfg := DefaultConfig()
	cfg.ClassName, cfg.UseKarrasSigmas = "DPMSolverMultistepScheduler", true
	plain := mustNew(t, NameDPMPP2M, cfg, 20)
	karras := mustNew(t, NameDPMPP2MKarras, DefaultConfig(), 20)
	if plain.Name() != NameDPMPP2M || karras.Name() != NameDPMPP2MKarras {
		t.Errorf("names = %q, %q", plain.Name(), karras.Name())
	}
	if plain.Sigmas()[1] == karras.Sigmas()[1] {
		t.Errorf("dpmpp_2m and dpmpp_2m_karras share sigma[1] = %v", plain.Sigmas()[1])
	}
	for _, name := range Names {
		if got := mustNew(t, name, DefaultConfig(), 4).Name(); got != name {
			t.Errorf("New(%q).Name() = %q", name, got)
		}
	}
}

// TestNamesMatchRequestValidation keeps the names New accepts in step with the
// names the API lets a request choose.
func TestNamesMatchRequestValidation(t *testing.T) {
	t.Parallel()
	if !slices.Equal(Names, diffute.SchedulerNames) {
		t.Errorf("sched.Names = %v, diffute.SchedulerNames = %v", Names, diffute.SchedulerNames)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	bad := DefaultConfig()
	bad.PredictionType = "flow"
	tests := []struct {
		name  string
		cfg   Config
		steps int
		want  string
	}{
		{"heun", DefaultConfig(), 4, `unknown scheduler "heun"`},
		{NameEuler, DefaultConfig(), 0, "steps must be at least 1, got 0"},
		{NameDDIM, DefaultConfig(), -3, "steps must be at least 1, got -3"},
		{NameEuler, DefaultConfig(), 1001, "at most num_train_timesteps=1000, got 1001"},
		{NameLCM, DefaultConfig(), 51, "at most original_inference_steps=50, got 51"},
		{NameEuler, bad, 4, `prediction_type "flow"`},
		{NameEuler, Config{}, 4, "num_train_timesteps must be at least 2, got 0"},
	}
	for _, tc := range tests {
		_, err := New(tc.name, tc.cfg, tc.steps)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %d) = %v, want an error containing %q", tc.name, tc.steps, err, tc.want)
		}
	}
}

func TestNeedsNoiseAndScale(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps int
		noise bool
		scale bool // ScaleModelInput != 1
	}{
		{NameEuler, 4, false, true},
		{NameEulerAncestral, 4, true, true},
		{NameEulerAncestral, 1, false, true},
		{NameDPMPP2M, 4, false, false},
		{NameDPMPP2MKarras, 4, false, false},
		{NameDDIM, 4, false, false},
		{NameLCM, 4, true, false},
		{NameLCM, 1, false, false},
	}
	for _, tc := range tests {
		s := mustNew(t, tc.name, turboConfig(), tc.steps)
		if s.NeedsNoise() != tc.noise {
			t.Errorf("%s/%d: NeedsNoise = %v, want %v", tc.name, tc.steps, s.NeedsNoise(), tc.noise)
		}
		if got := s.ScaleModelInput(0) != 1; got != tc.scale {
			t.Errorf("%s: ScaleModelInput(0) = %v", tc.name, s.ScaleModelInput(0))
		}
	}
}

func TestStepErrors(t *testing.T) {
	t.Parallel()
	x := []float32{1, 2, 3}
	m := []float32{0.1, 0.2, 0.3}
	for _, name := range Names {
		s := mustNew(t, name, DefaultConfig(), 4)
		if err := s.Step(4, m, x, x); err == nil || !strings.Contains(err.Error(), "step 4 out of range [0, 4)") {
			t.Errorf("%s: Step(4) = %v", name, err)
		}
		if err := s.Step(-1, m, x, x); err == nil || !strings.Contains(err.Error(), "step -1 out of range") {
			t.Errorf("%s: Step(-1) = %v", name, err)
		}
		if err := s.Step(0, m[:2], x, x); err == nil || !strings.Contains(err.Error(), "model output has 2 values, sample has 3") {
			t.Errorf("%s: short model output: %v", name, err)
		}
	}
	for _, name := range []string{NameEulerAncestral, NameLCM} {
		s := mustNew(t, name, DefaultConfig(), 2)
		if err := s.Step(0, m, x, nil); err == nil || !strings.Contains(err.Error(), "needs 3 noise values, got 0") {
			t.Errorf("%s: Step(0) without noise = %v", name, err)
		}
		// The last step adds no noise, so nil is fine there.
		if err := s.Step(1, m, x, nil); err != nil {
			t.Errorf("%s: last step without noise: %v", name, err)
		}
	}
	dpm := mustNew(t, NameDPMPP2M, DefaultConfig(), 4)
	if err := dpm.Step(1, m, x, nil); err == nil || !strings.Contains(err.Error(), "step 1 called out of order, want step 0") {
		t.Errorf("dpm out of order: %v", err)
	}
	if err := dpm.Step(0, m, x, nil); err != nil {
		t.Fatal(err)
	}
	if err := dpm.Step(1, m[:2], x[:2], nil); err == nil || !strings.Contains(err.Error(), "sample has 2 values, earlier steps had 3") {
		t.Errorf("dpm resized sample: %v", err)
	}
}

// perfectModel returns what an ideal network would output at step i of s for
// latents x whose clean image is x0: the exact ε (or v) that x is made of.
func perfectModel(t *testing.T, s Scheduler, cfg Config, i int, x, x0, out []float32) {
	t.Helper()
	// (α, σ) such that the scheduler's sample is α·x0 + σ·ε, and (a, b) the
	// variance-preserving pair that defines v = a·ε − b·x0.
	var alpha, sigma, a, b float64
	switch s.Name() {
	case NameEuler, NameEulerAncestral: // σ-space: x = x0 + σ·ε
		alpha, sigma = 1, s.Sigmas()[i]
		a, b = vpCoefficients(sigma)
	case NameDPMPP2M, NameDPMPP2MKarras: // variance-preserving, parameterised by σ
		alpha, sigma = vpCoefficients(s.Sigmas()[i])
		a, b = alpha, sigma
	default: // ddim, lcm: variance-preserving at ᾱ_t
		ac, err := cfg.alphasCumprod()
		if err != nil {
			t.Fatal(err)
		}
		at := ac[int(s.Timesteps()[i])]
		alpha, sigma = math.Sqrt(at), math.Sqrt(1-at)
		a, b = alpha, sigma
	}
	for j := range x {
		eps := (float64(x[j]) - alpha*float64(x0[j])) / sigma
		switch cfg.PredictionType {
		case "v_prediction":
			out[j] = float32(a*eps - b*float64(x0[j]))
		case "sample":
			out[j] = x0[j]
		default:
			out[j] = float32(eps)
		}
	}
}

// TestPerfectDenoiserRecoversX0 runs every scheduler end to end from pure noise
// with a model that always outputs the true noise (or v, or x0): the run must
// end on the clean latents.
func TestPerfectDenoiserRecoversX0(t *testing.T) {
	t.Parallel()
	for _, name := range Names {
		for _, pred := range []string{"epsilon", "v_prediction", "sample"} {
			for _, spacing := range []string{"leading", "trailing"} {
				for _, steps := range []int{1, 4, 20} {
					t.Run(fmt.Sprintf("%s/%s/%s/%d", name, pred, spacing, steps), func(t *testing.T) {
						t.Parallel()
						cfg := DefaultConfig()
						cfg.PredictionType, cfg.TimestepSpacing, cfg.StepsOffset = pred, spacing, 1
						s := mustNew(t, name, cfg, steps)
						rng := rand.New(rand.NewPCG(1, uint64(len(name))))
						const n = 512
						x0, x, out, noise := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
						for j := range x0 {
							x0[j] = float32(math.Sin(float64(j)) * 1.5)
							x[j] = float32(rng.NormFloat64() * s.InitNoiseSigma())
						}
						for i := range s.Timesteps() {
							perfectModel(t, s, cfg, i, x, x0, out)
							var z []float32
							if s.NeedsNoise() {
								for j := range noise {
									noise[j] = float32(rng.NormFloat64())
								}
								z = noise
							}
							if err := s.Step(i, out, x, z); err != nil {
								t.Fatal(err)
							}
						}
						var worst float64
						for j := range x {
							worst = math.Max(worst, math.Abs(float64(x[j]-x0[j])))
						}
						if worst > 2e-3 {
							t.Errorf("max |x − x0| = %v after %d steps, want < 2e-3", worst, steps)
						}
					})
				}
			}
		}
	}
}

// TestEulerAncestralDeterministicGivenNoise: the only randomness is the noise
// argument, and the noise actually enters the result.
func TestEulerAncestralDeterministicGivenNoise(t *testing.T) {
	t.Parallel()
	run := func(noiseScale float32) []float32 {
		s := mustNew(t, NameEulerAncestral, turboConfig(), 4)
		x := []float32{0.3, -0.7, 1.2}
		for i := range 4 {
			noise := []float32{noiseScale, -noiseScale, 0.5 * noiseScale}
			if err := s.Step(i, []float32{0.2, 0.1, -0.4}, x, noise); err != nil {
				t.Fatal(err)
			}
		}
		return x
	}
	a, b, c := run(1), run(1), run(2)
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("same noise, different results at %d: %v vs %v", i, a[i], b[i])
		}
	}
	if a[0] == c[0] && a[1] == c[1] && a[2] == c[2] {
		t.Errorf("different noise gave the same result %v", a)
	}
}

func TestStepDoesNotAllocate(t *testing.T) {
	const n = 4 * 32 * 32
	for _, name := range Names {
		steps := 50
		s := mustNew(t, name, DefaultConfig(), steps)
		x, m, z := make([]float32, n), make([]float32, n), make([]float32, n)
		for j := range x {
			x[j], m[j], z[j] = float32(j%7)-3, float32(j%5)*0.1, float32(j%3)-1
		}
		if err := s.Step(0, m, x, z); err != nil { // first call may allocate buffers
			t.Fatal(err)
		}
		i := 1
		allocs := testing.AllocsPerRun(20, func() {
			if err := s.Step(i, m, x, z); err != nil {
				t.Fatal(err)
			}
			i++
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Step, want 0", name, allocs)
		}
	}
}

// BenchmarkStep measures one Step on an SD 1.5/SDXL-Turbo sized latent
// (4×128×128 for 1024² SDXL). Run with -benchmem: allocs/op must be 0.
func BenchmarkStep(b *testing.B) {
	const n = 4 * 128 * 128
	for _, name := range Names {
		b.Run(name, func(b *testing.B) {
			const steps = 30
			s := mustNew(b, name, DefaultConfig(), steps)
			rng := rand.New(rand.NewPCG(7, 7))
			start, x, m, z := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
			for j := range start {
				start[j], m[j], z[j] = float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			copy(x, start)
			// One step first so that buffers made on first use (DPM++) are
			// not counted.
			if err := s.Step(0, m, x, z); err != nil {
				b.Fatal(err)
			}
			if d, ok := s.(*DPMPP2M); ok {
				d.next = 0
			}
			copy(x, start)
			b.SetBytes(4 * n)
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if err := s.Step(i, m, x, z); err != nil {
					b.Fatal(err)
				}
				if i++; i == steps {
					// Start the run over without allocating: DPM++ keeps the
					// buffer, and the latents go back to their start values.
					i = 0
					if d, ok := s.(*DPMPP2M); ok {
						d.next = 0
					}
					copy(x, start)
				}
			}
		})
	}
}

// TestClipSample checks the clip_sample branch of DDIM and LCM against the
// formulas written out here: x0 is clamped to ±clip_sample_range before use.
func TestClipSample(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.ClipSample, cfg.ClipSampleRange = true, 0.5
	ac, err := cfg.alphasCumprod()
	if err != nil {
		t.Fatal(err)
	}
	clamp := func(v float64) float64 { return math.Max(-0.5, math.Min(0.5, v)) }
	x := []float32{2, -0.01, -3}
	m := []float32{0.3, 0.0, -0.2}
	z := []float32{0.4, -1, 0.25}

	// DDIM, 10 leading steps (offset 0): step 0 goes from t=900 to t=800.
	ddim := mustNew(t, NameDDIM, cfg, 10)
	got := append([]float32(nil), x...)
	if err := ddim.Step(0, m, got, nil); err != nil {
		t.Fatal(err)
	}
	a, ap := ac[900], ac[800]
	want := make([]float64, len(x))
	for i := range x {
		x0 := clamp((float64(x[i]) - math.Sqrt(1-a)*float64(m[i])) / math.Sqrt(a))
		want[i] = math.Sqrt(ap)*x0 + math.Sqrt(1-ap)*float64(m[i])
	}
	assertSeries(t, "ddim clipped", float64s(got), want, 1e-5)

	// LCM, 2 steps: timesteps 999 and 499; step 0 re-noises to t=499.
	lcm := mustNew(t, NameLCM, cfg, 2)
	assertSeries(t, "lcm timesteps", lcm.Timesteps(), []float64{999, 499}, 0)
	got = append(got[:0], x...)
	if err := lcm.Step(0, m, got, z); err != nil {
		t.Fatal(err)
	}
	a, ap = ac[999], ac[499]
	st := 9990.0
	cSkip, cOut := 0.25/(st*st+0.25), st/math.Sqrt(st*st+0.25)
	for i := range x {
		x0 := clamp((float64(x[i]) - math.Sqrt(1-a)*float64(m[i])) / math.Sqrt(a))
		den := cOut*x0 + cSkip*float64(x[i])
		want[i] = math.Sqrt(ap)*den + math.Sqrt(1-ap)*float64(z[i])
	}
	assertSeries(t, "lcm clipped", float64s(got), want, 1e-5)
}

// TestLinearMatchesStep checks that the coefficients a Linear scheduler reports give
// bit for bit what its Step does, since the engine folds them into its own loop.
func TestLinearMatchesStep(t *testing.T) {
	t.Parallel()
	for _, name := range []string{NameEuler, NameEulerAncestral} {
		for _, pred := range []string{"epsilon", "v_prediction"} {
			cfg := DefaultConfig()
			cfg.PredictionType = pred
			s, err := New(name, cfg, 6)
			if err != nil {
				t.Fatal(err)
			}
			lin, ok := s.(Linear)
			if !ok {
				t.Fatalf("%s does not implement Linear", name)
			}
			x := []float32{0.5, -1.25, 3, 0.001, -7}
			m := []float32{0.1, 0.2, -0.3, 0.4, -0.5}
			n := []float32{1, -1, 0.5, -0.5, 2}
			for step := range 6 {
				want := append([]float32(nil), x...)
				noise := n
				if !s.NeedsNoise() {
					noise = nil
				}
				if err := s.Step(step, m, want, noise); err != nil {
					t.Fatal(err)
				}
				a, b, c, err := lin.StepCoefficients(step)
				if err != nil {
					t.Fatal(err)
				}
				for i := range x {
					got := a*x[i] + b*m[i]
					if c != 0 {
						got = a*x[i] + b*m[i] + c*n[i]
					}
					if got != want[i] {
						t.Fatalf("%s %s step %d [%d]: coefficients give %v, Step %v", name, pred, step, i, got, want[i])
					}
				}
				x = want
			}
			if _, _, _, err := lin.StepCoefficients(6); err == nil {
				t.Errorf("%s: step out of range accepted", name)
			}
		}
	}
}
