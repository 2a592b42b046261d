// Package sched owns the noise schedulers of the Stable Diffusion denoising loop:
// reading a diffusers scheduler/scheduler_config.json (Config), building the
// timestep and sigma schedule for a number of steps, and advancing the latents one
// step at a time from the UNet's (guidance-combined) output.
//
// The maths follows the diffusers implementations (EulerDiscreteScheduler,
// EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler as DPM++ 2M with
// the midpoint solver, DDIMScheduler with eta 0, LCMScheduler) so that a model
// sampled here sees the same timesteps and noise levels it would in diffusers.
// Schedules are computed in float64; tensors are float32 and are updated in place
// without allocating per step.
//
// The package is pure Go and knows nothing about ONNX Runtime or the UNet; the
// engine asks it for Timesteps, InitNoiseSigma and ScaleModelInput, runs the
// model, and hands the result to Step. A Scheduler is stateful (DPM++ 2M keeps
// the previous step's prediction): create one per generation with New.
package sched
