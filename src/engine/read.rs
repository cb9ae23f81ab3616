//! The read path: recommendations with the optional model ranking. Reads
//! the state under its read lock only; never writes.

use super::Shared;
use crate::error::EngineError;
use crate::model::ranker::Plan;
use crate::recommend::{self, RecommendRequest, Recommendations};

impl Shared {
    /// The read path of `Engine::recommend`: the strategy under the state's
    /// read lock, the model's ranking outside it.
    pub(super) fn recommend(&self, request: &RecommendRequest) -> Result<Recommendations, EngineError> {
        recommend::validate(request)?;
        let now_ms = crate::event::now_ms();
        // The whole ranking down to the page's end, then the page.
        let offset = request.offset;
        let request = &recommend::paged(request);
        let (model, admission) = match self.ranker.plan() {
            Plan::Plain(ranking) => {
                let mut answer = recommend::recommend(&self.read_state(), &self.config, request, now_ms)?;
                answer.ranking = ranking;
                recommend::unpage(&mut answer, offset);
                return Ok(answer);
            }
            Plan::Rank(model, admission) => (model, admission),
        };
        let (candidates, features) = match self.candidates(request, now_ms, true) {
            Ok(found) => found,
            Err(err) => {
                model.breaker.abandon(admission);
                return Err(err);
            }
        };
        let mut answer = candidates.answer;
        self.ranker.rank(&model, admission, &mut answer, &features, request.n);
        // Reasons only for the items kept (the model ran outside the lock).
        recommend::unpage(&mut answer, offset);
        recommend::fill_reasons(&self.read_state(), candidates.user, &candidates.neighbours, &mut answer.items);
        Ok(answer)
    }

    /// The strategy's best `max(n, models.candidates)` items and their
    /// features, from one read of the state.
    pub(super) fn candidates(
        &self,
        request: &RecommendRequest,
        now_ms: i64,
        defer_reasons: bool,
    ) -> Result<(recommend::Candidates, Vec<f32>), EngineError> {
        let config = &self.config;
        let wide = RecommendRequest { n: request.n.max(config.models.candidates), ..request.clone() };
        let state = self.read_state();
        let candidates = recommend::recommend_with(&state, config, &wide, now_ms, defer_reasons)?;
        let features = crate::model::features::build(
            &state,
            config,
            candidates.user,
            request.strategy,
            &candidates.scores,
            &candidates.items,
        );
        Ok((candidates, features))
    }
}
