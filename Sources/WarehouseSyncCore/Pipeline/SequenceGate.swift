import Foundation

/// How a stream sequences its keys (DESIGN §5, `GAP_TIMEOUT`).
public struct SequencingPolicy: Sendable, Hashable {
    /// A key with no history starts at the first sequence it sees instead of 1: for onboarding a
    /// WMS that has been numbering for years. The price: if its events arrive out of order, the
    /// ones below the first one seen are stale.
    public var acceptFirstSeen: Bool
    /// How long the oldest held event may wait for a missing predecessor before the key is parked.
    public var gapTimeout: Duration

    public init(acceptFirstSeen: Bool = false, gapTimeout: Duration) {
        self.acceptFirstSeen = acceptFirstSeen
        self.gapTimeout = gapTimeout
    }
}

/// The facts about an arriving event that the gate decides on.
public struct IncomingEvent: Sendable, Hashable {
    public var eventId: String
    public var sequence: Int64
    public var fingerprint: EventFingerprint
    /// The message is a replay of a dead letter (``WireHeader/replayOf``, vouched for by the store).
    public var isReplay: Bool

    public init(eventId: String, sequence: Int64, fingerprint: EventFingerprint, isReplay: Bool) {
        self.eventId = eventId
        self.sequence = sequence
        self.fingerprint = fingerprint
        self.isReplay = isReplay
    }

    /// The facts of a decoded event; `isReplay` when its message carries ``WireHeader/replayOf``.
    public init(_ event: WarehouseEvent, isReplay: Bool) {
        self.init(
            eventId: event.eventId, sequence: event.sequence, fingerprint: EventFingerprint(of: event), isReplay: isReplay
        )
    }
}

/// What the store knows about an `eventId` (its dedup record), looked up before the gate decides.
///
/// The store writes each in the transaction of the step that causes it: `posting` or `held` as
/// ``GateDecision/updatedRecord`` says; `posted` when the ERP answered success (or 409);
/// `deadLettered` when the event is dead-lettered as `erp-rejected` or `retries-exhausted`. A
/// `conflict` dead letter leaves the record alone: it belongs to the other payload.
public enum DedupRecord: Sendable, Hashable {
    /// Never let through.
    case notSeen
    /// Let through for posting, outcome not recorded yet: being posted, in a delayed retry, or
    /// interrupted by a crash. Written before the post so that another payload under the same
    /// `eventId` is caught as a conflict even then (the ERP's 409 cannot tell payloads apart),
    /// and so that the event's retries and redeliveries are posted even if its key was skipped
    /// past it meanwhile.
    case posting(EventFingerprint)
    /// Held by its key, waiting for its turn.
    case held(EventFingerprint)
    /// The ERP has it: the only state that makes a same-payload copy a duplicate for good.
    case posted(EventFingerprint)
    /// Rejected by the ERP or out of retries: not posted, so a replay of it is posted.
    case deadLettered(EventFingerprint)
}

/// What to do with an arriving event. Each case says how the message is settled.
public enum GateAction: Sendable, Hashable {
    /// Already posted, or already held, with the same payload: ack, count a duplicate, post
    /// nothing.
    case duplicate
    /// Dead-letter with reason ``DeadLetterReason/conflict`` and ``ConflictDetail/description``
    /// as the error. The key does not move.
    case conflict(ConflictDetail)
    /// The key is past this sequence, and the event is no replay and was never let through: ack,
    /// count as stale.
    case stale
    /// The key is past this sequence because an operator skipped it (`whsync gaps skip`) before
    /// it arrived: dead-letter it with reason ``DeadLetterReason/gapTimeout``, so that a person
    /// sees it and can replay it (a replay is posted out of order). The key does not move.
    case skipped
    /// Map and post it now (after persisting the decision's record). When it is settled (posted,
    /// rejected or out of retries), call ``SequenceGate/settle(_:sequence:)``; on a transient
    /// failure send it to a delayed retry.
    case apply
    /// Ahead of its turn: store the message as held together with the decision's state and
    /// record, then ack.
    case hold
    /// The key is parked: store the message as held together with the decision's state and
    /// record, then ack. It waits for an operator's ``SequenceGate/skip(_:)``.
    case holdParked
}

/// Why an event conflicts. The description is short and safe to log (ids only, no payload).
public enum ConflictDetail: Sendable, Hashable, CustomStringConvertible {
    /// The `eventId` was seen with another payload.
    case payloadDiffers
    /// The sequence is held for another event: the WMS reused a sequence number.
    case sequenceHeld(byEventId: String)
    /// The sequence is in turn and already let through for another event (being posted, or in a
    /// delayed retry): the WMS reused a sequence number, or re-emitted an event under a new id.
    case sequenceClaimed(byEventId: String)

    public var description: String {
        switch self {
        case .payloadDiffers: "eventId already seen with a different payload"
        case .sequenceHeld(let other): "sequence already held for eventId \(other.prefix(128))"
        case .sequenceClaimed(let other): "sequence already being posted for eventId \(other.prefix(128))"
        }
    }
}

/// A gate decision: the action, and what to persist in one transaction with the action's effects
/// (for a hold: with the held message) before the message is acked or posted.
public struct GateDecision: Sendable, Hashable {
    public var action: GateAction
    /// The new state of the key; `nil` when the decision changes nothing.
    public var updatedState: KeyState?
    /// The event's new dedup record: `posting` for ``GateAction/apply``, `held` for a hold;
    /// `nil` when the record stays as it is.
    public var updatedRecord: DedupRecord?

    public init(action: GateAction, updatedState: KeyState? = nil, updatedRecord: DedupRecord? = nil) {
        self.action = action
        self.updatedState = updatedState
        self.updatedRecord = updatedRecord
    }
}

/// A held event whose turn has come: load its stored message, map and post it, and settle it
/// like an applied event. Its message was acked when it was held, so there is nothing to ack.
public struct Release: Sendable, Hashable {
    public var sequence: Int64
    public var eventId: String

    public init(sequence: Int64, eventId: String) {
        self.sequence = sequence
        self.eventId = eventId
    }
}

/// The outcome of settling an event.
public struct Settlement: Sendable, Hashable {
    /// The new state; `nil` when the event was not the one in turn (a replay below the key's
    /// position, or a second copy that was settled already), which changes nothing.
    public var updatedState: KeyState?
    /// The held event to process next, in the same way, until this is `nil`.
    public var release: Release?
}

/// What an operator's skip did.
public struct SkipOutcome: Sendable, Hashable {
    public var updatedState: KeyState
    /// The sequences given up on; `nil` when the lowest held event was already the one in turn.
    public var skipped: ClosedRange<Int64>?
    /// The lowest held event, now in turn.
    public var release: Release
}

/// The sequencing rules of DESIGN §5 as a state machine over ``KeyState``: it decides, the
/// pipeline and the store carry out. Pure: time comes in as arguments.
///
/// The life of an event: ``decide(_:event:record:now:)`` says apply, hold, or settle the message
/// at once (duplicate, stale, conflict). An applied or released event, once posted, rejected or
/// out of retries, goes through ``settle(_:sequence:)``, which moves the key on and hands out the
/// next held event while they are contiguous. ``checkGap(_:now:)`` parks a key whose gap is older
/// than the timeout; ``skip(_:)`` is the operator's way out. ``pendingRelease(_:)`` finds
/// releases a crash interrupted.
///
/// Ordering guarantee: a key's events are applied one at a time in sequence order, each only
/// after its predecessor was settled or skipped. The exceptions are posted out of order on
/// purpose: replays of dead letters, and events an operator skipped while they were in flight.
public struct SequenceGate: Sendable {
    public var policy: SequencingPolicy

    public init(policy: SequencingPolicy) {
        self.policy = policy
    }

    /// Decides what to do with an arriving event of a key whose state is `state` (`nil`: the key
    /// was never seen), given its dedup `record`.
    public func decide(_ state: KeyState?, event: IncomingEvent, record: DedupRecord, now: Date) -> GateDecision {
        let conflict = GateDecision(action: .conflict(.payloadDiffers))
        switch record {
        case .notSeen:
            break
        case .posted(let fingerprint):
            return fingerprint == event.fingerprint ? GateDecision(action: .duplicate) : conflict
        case .held(let fingerprint):
            // Same payload: the key's held entry decides below (duplicate, or its turn to post).
            guard fingerprint == event.fingerprint else { return conflict }
        case .posting(let fingerprint), .deadLettered(let fingerprint):
            // Neither posted nor held: a replay may carry an edited body, fixing it is what
            // `dlq edit` is for.
            guard event.isReplay || fingerprint == event.fingerprint else { return conflict }
        }
        let posting = DedupRecord.posting(event.fingerprint)

        let isNewKey = state == nil
        var key = state ?? KeyState(nextExpected: policy.acceptFirstSeen ? event.sequence : 1)
        if event.sequence < key.nextExpected {
            // A replay is posted although the key moved past it: a rejected event stays unposted
            // when its key moves on (DESIGN §5). So is an event let through before (a retry or a
            // redelivery) whose sequence an operator skipped meanwhile: it was not missing.
            let wasLetThrough = record == posting
            if event.isReplay || wasLetThrough { return GateDecision(action: .apply, updatedRecord: posting) }
            // Never seen before and given up on by an operator: not stale, lost unless someone posts it.
            return GateDecision(action: record == .notSeen && key.wasSkipped(event.sequence) ? .skipped : .stale)
        }
        precondition(key.held.isKnown(event.sequence), "the store read no held entry for the sequence decided on")
        if let held = key.held[event.sequence] {
            guard held.eventId == event.eventId else {
                return GateDecision(action: .conflict(.sequenceHeld(byEventId: held.eventId)))
            }
            // The held event in turn comes back as a delivery when its posting went to a delayed
            // retry (or the message is redelivered): post it. Any other copy waits in `held`.
            let isInTurn = event.sequence == key.nextExpected && key.parked == nil
            return isInTurn ? GateDecision(action: .apply, updatedRecord: posting) : GateDecision(action: .duplicate)
        }
        if event.sequence == key.nextExpected, let claimant = key.claimant, claimant != event.eventId {
            // Checked before a parked key holds it: held and skipped past, it would be posted
            // beside the claimant when that comes back from its retry.
            return GateDecision(action: .conflict(.sequenceClaimed(byEventId: claimant)))
        }
        if key.parked != nil || event.sequence > key.nextExpected {
            key.held.hold(KeyState.HeldEvent(eventId: event.eventId, heldAt: now), at: event.sequence)
            return GateDecision(
                action: key.parked == nil ? .hold : .holdParked, updatedState: key, updatedRecord: .held(event.fingerprint)
            )
        }
        // In turn. The claim is written with the record, before the post: a replica that
        // decided on the same snapshot for another eventId loses the commit's version check and
        // decides again against the claim. A new key's state is written now as well, so that its
        // next events are measured against this start even while this one is being posted.
        guard isNewKey || key.claimant == nil else { return GateDecision(action: .apply, updatedRecord: posting) }
        key.claim = KeyState.Claim(eventId: event.eventId, sequence: event.sequence)
        return GateDecision(action: .apply, updatedState: key, updatedRecord: posting)
    }

    /// The event of `sequence` that the gate applied or released is settled: posted (200, 201 or
    /// 409), rejected by the ERP, or dead-lettered after its last retry. Moves the key on when it
    /// was the one in turn, and hands out the next held event if it is now in turn.
    ///
    /// Call it in the transaction that records the outcome, and drop the held message of
    /// `sequence` there too. Not for a transient failure that goes to a delayed retry: the key
    /// waits for that event. Idempotent: settling the same sequence again changes nothing.
    public func settle(_ state: KeyState, sequence: Int64) -> Settlement {
        guard sequence == state.nextExpected else { return Settlement(updatedState: nil, release: nil) }
        var key = state
        key.held.remove(sequence)
        key.claim = nil
        // Saturating, as a defence: the decoder bounds sequences far below Int64.max.
        let (next, overflow) = sequence.addingReportingOverflow(1)
        key.nextExpected = overflow ? .max : next
        return Settlement(updatedState: key, release: pendingRelease(key))
    }

    /// The held event whose turn it is, unless the key is parked. At start-up the pipeline asks
    /// this of every key with held events: a release chain that a crash interrupted resumes here.
    /// `nil` too when the state's view of its held events no longer reaches ``KeyState/nextExpected``
    /// (a long release chain on one read): read the key again and ask again.
    public func pendingRelease(_ state: KeyState) -> Release? {
        guard state.parked == nil, let held = state.held[state.nextExpected] else { return nil }
        return Release(sequence: state.nextExpected, eventId: held.eventId)
    }

    /// The parked state to persist when the oldest held event has waited at least
    /// ``SequencingPolicy/gapTimeout`` for a missing predecessor; `nil` when the key is fine (or
    /// parked already). Run it periodically over the keys with held events.
    ///
    /// `waited` is how long the oldest held event has waited; a worker measures it with a
    /// ``GapTimer``, so that a wall-clock jump cannot park keys early. `now` only dates the park.
    ///
    /// A key whose event in turn sits in a delayed retry also looks like a gap: keep
    /// `GAP_TIMEOUT` above the retry schedule (``RetryPolicy/totalRetryDelay``), or such keys
    /// park and need a skip (which then skips nothing and just resumes).
    public func checkGap(_ state: KeyState, waited: Duration, now: Date) -> KeyState? {
        guard state.parked == nil, state.held.isKnown(state.nextExpected), state.held[state.nextExpected] == nil,
            !state.held.isEmpty, waited >= policy.gapTimeout
        else { return nil }
        var key = state
        key.parked = KeyState.Parking(since: now, reason: .gapTimeout)
        return key
    }

    /// ``checkGap(_:waited:now:)`` with the wait read off the wall clock alone: for a look
    /// without a ``GapTimer`` (one-shot tools, tests).
    public func checkGap(_ state: KeyState, now: Date) -> KeyState? {
        guard let oldest = state.oldestHeldAt else { return nil }
        return checkGap(state, waited: .seconds(now.timeIntervalSince(oldest)), now: now)
    }

    /// The operator's `whsync gaps skip`: give up on the missing sequences, unpark, and resume
    /// at the lowest held event (released first, its successors after it as they settle). Works
    /// on a key that is not parked too. `nil` when nothing is held: there is nothing to resume.
    ///
    /// A skipped event that arrives later is dead-lettered (``GateAction/skipped``), unless it is
    /// a replay or was let through before (an event in a delayed retry looks missing; it is
    /// posted when it comes back, out of order). The key remembers the last
    /// ``KeyState/maxSkippedRanges`` skipped gaps for that.
    public func skip(_ state: KeyState) -> SkipOutcome? {
        guard let lowest = state.lowestHeld, let held = state.held[lowest] else { return nil }
        var key = state
        let skipped = key.missingSequences
        if let skipped {
            key.skipped.append(skipped)
            key.skipped.removeFirst(max(0, key.skipped.count - KeyState.maxSkippedRanges))
        }
        key.nextExpected = lowest
        key.parked = nil
        key.claim = nil
        return SkipOutcome(updatedState: key, skipped: skipped, release: Release(sequence: lowest, eventId: held.eventId))
    }
}
