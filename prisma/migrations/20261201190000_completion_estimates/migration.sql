-- Completion estimates read how long the latest generations took: the newest completions, through
-- an index that holds completed transitions only.
CREATE INDEX "Transition_completed_idx" ON "Transition"("completedAt") WHERE (status = 'COMPLETED'::"TransitionStatus");
