//! `freeway chat`: agent sessions in an interactive terminal. The state ([`app`]) knows no
//! terminal; this module owns the loop that feeds it keys, the events of the turn running in a
//! task, and the answers of the store, and draws it ([`ui`]) after each.

mod app;
mod approval;
mod input;
mod terminal;
mod transcript;
mod ui;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use freeway_agent::{ApproveAll, Approver, Event, Owner, Record, Runtime, SessionOptions, Turn};
use freeway_config::Source;
use freeway_gateway::Gateway;
use freeway_sandbox::Sandbox;
use freeway_store::{Scope, Session, SessionQuery, Store};
use ratatui::crossterm::event as term;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::ChatArgs;
use crate::commands::{load, local_loader};
use crate::output;
use app::{Action, App};
use approval::{Asked, Book, Forward};
use terminal::Tui;
use transcript::Tone;

/// Recent sessions the picker lists.
const PICKER_SESSIONS: i64 = 50;
/// How long a turn aborted at exit gets to record its end.
const SHUTDOWN: Duration = Duration::from_secs(10);

pub async fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        output::error("freeway chat needs a terminal; in scripts and pipes, use `freeway run`");
        return Ok(ExitCode::FAILURE);
    }
    let config = load(&Source {
        file: args.config.config.clone(),
        listen: None,
    })?;
    let gateway =
        Arc::new(Gateway::from_config(&config, &local_loader).map_err(anyhow::Error::msg)?);
    let store = Store::open(&config.storage_url)
        .await
        .context("storage.url: the store could not be opened")?;
    let cwd = std::fs::canonicalize(&args.cwd)
        .with_context(|| format!("--cwd {}: no such directory", args.cwd.display()))?;
    let mut sandbox_config = config.sandbox.config.clone();
    sandbox_config.workspace = cwd.clone();
    let sandbox =
        Arc::new(Sandbox::new(sandbox_config).map_err(|e| anyhow::anyhow!("the sandbox: {e}"))?);
    let runtime = Arc::new(crate::agent::runtime(&config, gateway, store.clone(), sandbox).await?);
    // What can fail before the screen is taken fails here, printed plainly.
    let resumed = match &args.resume {
        Some(id) => Some(
            load_session(&store, id)
                .await
                .map_err(|e| anyhow::anyhow!("--resume {id}: {e}"))?,
        ),
        None => None,
    };
    let agent_model = runtime.agent(&args.agent).map(|spec| spec.model.clone());
    let model = match (&args.model, agent_model) {
        (Some(model), _) => model.clone(),
        (None, Ok(model)) => model,
        (None, Err(e)) if resumed.is_none() => return Err(anyhow::Error::msg(e)),
        (None, Err(_)) => String::new(),
    };

    let (msgs_tx, msgs) = mpsc::unbounded_channel();
    let (asks_tx, asks) = mpsc::unbounded_channel();
    let approver: Arc<dyn Approver> = if args.yes {
        Arc::new(ApproveAll)
    } else {
        Arc::new(Forward(asks_tx))
    };
    let mut app = App::new(&args.agent, &model);
    app.approve_all = args.yes;
    let mut chat = Chat {
        runtime,
        store: store.clone(),
        tracker: TaskTracker::new(),
        approver,
        msgs: msgs_tx,
        book: Book::default(),
        session: None,
        options: SessionOptions {
            agent: args.agent.clone(),
            model: args.model.clone(),
            working_directory: cwd,
            title: None,
        },
        model,
    };
    if let Some((session, records)) = resumed {
        chat.opened(&mut app, session, &records);
    }

    let (keys_tx, keys) = mpsc::unbounded_channel();
    let mut tui = Tui::enter().context("cannot set up the terminal")?;
    let reader = std::thread::spawn(move || read_terminal(&keys_tx));
    let mut channels = Channels { keys, msgs, asks };
    let result = chat
        .run(&mut tui, &mut app, ui::Theme::from_env(), &mut channels)
        .await;
    // The reader stops within one poll once its channel is gone; join it before the shell
    // gets the terminal back, so that it takes no key of the shell's.
    drop(channels);
    let _ = reader.join();
    drop(tui);

    app.abort();
    chat.tracker.close();
    if tokio::time::timeout(SHUTDOWN, chat.tracker.wait())
        .await
        .is_err()
    {
        output::warning("the aborted turn did not finish in time; its end may not be recorded");
    }
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

/// Forwards terminal events until the receiver is dropped or the terminal fails.
fn read_terminal(keys: &mpsc::UnboundedSender<term::Event>) {
    while !keys.is_closed() {
        match term::poll(Duration::from_millis(100)) {
            Ok(false) => {}
            Ok(true) => match term::read() {
                Ok(event) => {
                    if keys.send(event).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Err(_) => return,
        }
    }
}

async fn load_session(
    store: &Store,
    id: &str,
) -> Result<(Session, Vec<Record>), freeway_store::StoreError> {
    let session = store.session(Scope::All, id).await?;
    let items = store.items(Scope::All, id, 0, None).await?;
    Ok((
        session,
        items.iter().filter_map(Record::from_item).collect(),
    ))
}

/// What the loop hears from.
struct Channels {
    keys: mpsc::UnboundedReceiver<term::Event>,
    msgs: mpsc::UnboundedReceiver<Msg>,
    asks: mpsc::UnboundedReceiver<Asked>,
}

/// News of the running turn, in order: its events, then its end.
enum Msg {
    Event(Event),
    Ended {
        error: Option<String>,
        /// The turn's task panicked: the screen has the panic's message over it.
        crashed: bool,
    },
}

struct Chat {
    runtime: Arc<Runtime>,
    store: Store,
    tracker: TaskTracker,
    approver: Arc<dyn Approver>,
    msgs: mpsc::UnboundedSender<Msg>,
    book: Book,
    /// The session turns go to; `None` until the first message of a new one.
    session: Option<Session>,
    /// How a new session is made.
    options: SessionOptions,
    /// The model of a new session, for the status line.
    model: String,
}

impl Chat {
    async fn run(
        &mut self,
        tui: &mut Tui,
        app: &mut App,
        theme: ui::Theme,
        channels: &mut Channels,
    ) -> anyhow::Result<()> {
        let mut spinner = tokio::time::interval(Duration::from_millis(120));
        spinner.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tui.draw(|frame| ui::draw(frame, app, theme))
                .context("drawing the screen")?;
            tokio::select! {
                event = channels.keys.recv() => {
                    // The terminal is gone: nothing more can be typed.
                    let Some(event) = event else { return Ok(()) };
                    if let Some(key) = input::key_of(&event) {
                        let action = app.on_key(key);
                        if !self.act(action, app).await {
                            return Ok(());
                        }
                    }
                }
                Some(msg) = channels.msgs.recv() => self.on_msg(msg, app, tui)?,
                Some(asked) = channels.asks.recv() => self.book.asked(asked),
                _ = spinner.tick(), if app.is_running() => app.tick(),
            }
            // Deltas come in bursts: apply all that wait before drawing again.
            while let Ok(msg) = channels.msgs.try_recv() {
                self.on_msg(msg, app, tui)?;
            }
        }
    }

    fn on_msg(&mut self, msg: Msg, app: &mut App, tui: &mut Tui) -> anyhow::Result<()> {
        match msg {
            Msg::Event(event) => app.on_event(event),
            Msg::Ended { error, crashed } => {
                self.book.clear();
                app.turn_ended(error);
                if crashed {
                    tui.clear().context("repainting the screen")?;
                }
            }
        }
        Ok(())
    }

    /// Does what a key asked; false to quit.
    async fn act(&mut self, action: Action, app: &mut App) -> bool {
        match action {
            Action::None => {}
            Action::Quit => return false,
            Action::Send(text) => self.send(text, app).await,
            Action::Decide { call_id, decision } => self.book.decide(call_id, decision),
            Action::ListSessions => {
                let query = SessionQuery {
                    limit: Some(PICKER_SESSIONS),
                    agent: None,
                };
                match self.store.list_sessions(Scope::All, &query).await {
                    Ok(sessions) => app.show_sessions(sessions),
                    Err(e) => app.notice(Tone::Error, format!("error: listing the sessions: {e}")),
                }
            }
            Action::Open(id) => match load_session(&self.store, &id).await {
                Ok((session, records)) => self.opened(app, session, &records),
                Err(e) => app.notice(Tone::Error, format!("error: opening {id}: {e}")),
            },
            Action::NewSession => {
                self.session = None;
                app.reset(&self.options.agent, &self.model);
                app.notice(Tone::Dim, "a new session: the next message starts it");
            }
        }
        true
    }

    fn opened(&mut self, app: &mut App, session: Session, records: &[Record]) {
        app.open_session(&session, records);
        if let Err(e) = self.runtime.agent(&session.agent) {
            app.notice(Tone::Error, format!("this session cannot go on here: {e}"));
        }
        self.session = Some(session);
    }

    /// Starts a turn with `text` in a task; its events come back as [`Msg`]s.
    async fn send(&mut self, text: String, app: &mut App) {
        let session = match &self.session {
            Some(session) => session.clone(),
            None => {
                match self
                    .runtime
                    .create_session(&Owner::default(), &self.options)
                    .await
                {
                    Ok(session) => {
                        app.set_session(&session);
                        self.session = Some(session.clone());
                        session
                    }
                    Err(e) => {
                        app.turn_ended(Some(e.to_string()));
                        return;
                    }
                }
            }
        };
        let cancel = CancellationToken::new();
        app.turn_started(cancel.clone());
        let (events, mut received) = mpsc::unbounded_channel();
        let turn = Turn {
            cancel,
            approver: self.approver.clone(),
            ..Turn::new(text, events)
        };
        let runtime = self.runtime.clone();
        let msgs = self.msgs.clone();
        let tracker = self.tracker.clone();
        self.tracker.spawn(async move {
            let run = tracker.spawn(async move {
                runtime
                    .run(Scope::All, &session.id, turn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            });
            // Ends when the turn, and with it the sender, is dropped.
            while let Some(event) = received.recv().await {
                let _ = msgs.send(Msg::Event(event));
            }
            let ended = match run.await {
                Ok(result) => Msg::Ended {
                    error: result.err(),
                    crashed: false,
                },
                Err(e) => Msg::Ended {
                    error: Some(format!("the turn crashed: {e}")),
                    crashed: e.is_panic(),
                },
            };
            let _ = msgs.send(ended);
        });
    }
}
