// Package sched owns the noise schedulers of the Stable Diffusion denoising loop:
// reading a diffusers scheduler/scheduler_config.json (Config), building the
// timestep and sigma schedule for a number of steps, and advancing the latents one
// step at a time from the UNet's (guidance-combined) output.
//
// The maths follows the diffusers implementations (EulerDiscreteScheduler,
// EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler as DPM++ 2M with
// the midpoint solver, DDIMScheduler with eta 0, LCMScheduler) so that a model
// sampled here sees the same timesteps and noise levels it would in diffusers.
// The schedule is computed with the same operations, order and precision as
// diffusers' torch float32 and numpy float64 code (see schedule.go), so that
// values that diffusers rounds (np.round, casts to float32) round the same way
// for every step count; a key absent from scheduler_config.json takes the
// default of the class that reads it (Config.Spacing). Tensors are float32 and
// are updated in place without allocating per step.
//
// The package is pure Go and knows nothing about ONNX Runtime or the UNet; the
// engine asks it for Timesteps, InitNoiseSigma and ScaleModelInput, runs the
// model, and hands the result to Step. A Scheduler is stateful (DPM++ 2M keeps
// the previous step's prediction): create one per generation with New.
package sched
