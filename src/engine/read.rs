//! The read path: recommendations with the optional model ranking. Reads
//! the state under its read lock only; never writes.

use super::Shared;
use crate::error::EngineError;
use crate::event::{self, Event};
use crate::limits::SESSION_EVENTS_MAX;
use crate::model::ranker::Plan;
use crate::recommend::{self, RecommendRequest, Recommendations, SessionRequest};
use crate::record::LoggedKind;

impl Shared {
    /// The read path of `Engine::recommend`: the strategy under the state's
    /// read lock, the model's ranking outside it.
    pub(super) fn recommend(&self, request: &RecommendRequest) -> Result<Recommendations, EngineError> {
        recommend::validate(request)?;
        self.note_strategy(request.strategy);
        let now_ms = crate::event::now_ms();
        // The whole ranking down to the page's end, then the page.
        let offset = request.offset;
        let request = &recommend::paged(request);
        let (model, admission, role) = match self.ranker.plan(&request.user) {
            Plan::Plain(ranking) => {
                let mut answer = recommend::recommend(&self.read_state(), &self.config, request, now_ms)?;
                answer.ranking = ranking;
                recommend::unpage(&mut answer, offset);
                return Ok(answer);
            }
            Plan::Rank(model, admission, role) => (model, admission, role),
        };
        // One matrix for the serving model and the shadow: the wider
        // schema's (schema 2 begins with schema 1's columns).
        let shadow = self.ranker.shadow();
        let schema = shadow.as_ref().map_or(model.schema, |shadow| shadow.schema.max(model.schema));
        let (candidates, features) = match self.candidates(request, now_ms, true, schema) {
            Ok(found) => found,
            Err(err) => {
                model.breaker.abandon(admission);
                return Err(err);
            }
        };
        let mut answer = candidates.answer;
        let rows = answer.items.len();
        let width = crate::model::schema::width(schema);
        let rows_of = crate::model::ranker::Rows { values: &features, width };
        self.ranker.rank(&model, admission, role, &mut answer, rows_of, request.n);
        // The shadow scores the same candidates on its own thread: it never
        // changes the answer nor adds to its latency.
        if let Some(shadow) = shadow {
            self.ranker.shadow_score(shadow, &features, width, rows);
        }
        // Reasons only for the items kept (the model ran outside the lock).
        recommend::unpage(&mut answer, offset);
        recommend::fill_reasons(&self.read_state(), candidates.user, &candidates.neighbours, &mut answer.items);
        Ok(answer)
    }

    /// The strategy's best `max(n, models.candidates)` items and their
    /// features of `schema`, from one read of the state.
    pub(super) fn candidates(
        &self,
        request: &RecommendRequest,
        now_ms: i64,
        defer_reasons: bool,
        schema: u32,
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
            schema,
        );
        Ok((candidates, features))
    }

    /// `Engine::recommend_session`: the events validated as ingested events
    /// are (field names `events[i].…`), then answered under the read lock;
    /// nothing is written.
    pub(super) fn recommend_session(&self, request: &SessionRequest) -> Result<Recommendations, EngineError> {
        recommend::validate_page(request.n, request.offset)?;
        request.filter.validate()?;
        self.note_strategy(request.strategy);
        if request.events.len() > SESSION_EVENTS_MAX {
            return Err(EngineError::invalid(
                "events",
                format!("at most {SESSION_EVENTS_MAX} events, got {}", request.events.len()),
            ));
        }
        let now_ms = event::now_ms();
        // Validated as an ingested event is, under a placeholder user id.
        let events: Vec<Event> = request
            .events
            .iter()
            .map(|session| Event {
                weight: session.weight,
                ..Event::new("session", &session.item, session.kind.clone())
            })
            .collect();
        let mut resolved = Vec::with_capacity(events.len());
        for (at, session) in events.iter().enumerate() {
            let logged = event::validate(session, &self.config, now_ms, &|| format!("events[{at}]"))?;
            resolved.push((session.item.as_str(), logged.kind == LoggedKind::Rating, logged.weight));
        }
        let state = self.read_state();
        Ok(recommend::recommend_session(&state, &self.config, request, &resolved, now_ms))
    }
}
