-- What made each prompt's images, as the engine resolved it (diffute.Recipe as
-- JSON): model source, rng, seeds, scheduler and spacing, steps, guidance, size.
ALTER TABLE prompts ADD COLUMN recipe TEXT;
