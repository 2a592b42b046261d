-- PostgreSQL twin of migrations/sqlite/0022_prompt_recipe.sql.
ALTER TABLE prompts ADD COLUMN recipe TEXT;
