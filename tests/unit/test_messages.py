"""A service's message keeps its template and facts beside the English the API returns."""

from __future__ import annotations

import copy
import pickle

import pytest

from pharmacy.errors import InvalidTransition, Message
from pharmacy.prescriptions.domain import Action, Status, next_status
from pharmacy.procurement.domain import check_transfer_action


def test_a_message_is_its_english_and_keeps_what_it_was_made_from() -> None:
    said = Message("lot %(lot)s has %(available)s available, not %(quantity)s", lot="L1", available=3, quantity=5)
    assert said == "lot L1 has 3 available, not 5" and isinstance(said, str)
    assert said.template == "lot %(lot)s has %(available)s available, not %(quantity)s"
    assert said.facts == {"lot": "L1", "available": 3, "quantity": 5}


def test_a_list_of_words_is_joined_by_commas_and_each_word_stays_a_word() -> None:
    said = Message("use one of: %(allowed)s", allowed=[Message.word("dose"), Message.word("other")])
    assert said == "use one of: dose, other"
    assert [word.template for word in said.facts["allowed"]] == ["dose", "other"]


def test_a_message_copied_or_pickled_keeps_its_template_and_facts() -> None:
    said = Message("drug %(drug)s is retired", drug="AML5")
    for again in (copy.deepcopy(said), pickle.loads(pickle.dumps(said))):
        assert (again, again.template, again.facts) == (said, said.template, said.facts)


def test_a_refused_step_says_the_state_and_the_steps_it_allows_as_words() -> None:
    with pytest.raises(InvalidTransition) as refused:
        next_status(Status.ACCEPTED, Action.ACCEPT)
    said = refused.value.message
    assert said == "cannot accept a prescription that is accepted; from accepted it may: cancel, expire, prepare, " \
                   "reject, return"
    assert isinstance(said, Message) and said.facts["status"].template == "accepted"
    assert [word.template for word in said.facts["allowed"]] == ["cancel", "expire", "prepare", "reject", "return"]


def test_a_transfer_order_refusal_says_either_state_it_could_be_in() -> None:
    with pytest.raises(InvalidTransition) as refused:
        check_transfer_action("requested", "receive")
    said = refused.value.message
    assert said == "the transfer order is requested: only an order that is partially_received or shipped can receive"
    assert isinstance(said, Message) and said.facts["allowed"].template == "%(either)s or %(other)s"
