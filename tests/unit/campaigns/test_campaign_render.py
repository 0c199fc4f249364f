"""Rendering: escaping, strict undefined variables, unsubscribe link and header, compile once."""

from __future__ import annotations

import pytest

from martech.campaigns.render import Recipient, Renderer, RenderError, render_message
from martech.campaigns.spec import load_campaigns

SPECS = {s.id: s for s in load_campaigns()}

# What build_snapshot adds to the attributes of members of a campaign with a coupon.
COUPON = {"code": "BDAY-2345-6789-ABCD", "discount_percent": 15, "valid_from": "2024-06-01",
          "valid_until": "2024-06-07", "expires_at": "2024-06-08T00:00:00+00:00"}

ATTRIBUTES = {
    "winback": {"rfm_segment": "At Risk", "last_category": "Shoes", "value_tier": "gold", "coupon_percent": 20,
                "unanswered_sends": 0, "last_resort": False,
                "coupon": {**COUPON, "code": "WB-2345-6789-ABCD", "discount_percent": 20}},
    "birthday": {"is_customer": True, "coupon": COUPON},
    "upsell": {
        "last_category": "Shoes", "offer_category": "Socks & <Stockings>", "offer_source": "category_affinity",
        "products": [
            {"product_id": 1, "name": "Wool <sock>", "price": 9.9, "image_url": "https://img.example/1.png",
             "reason": "customers who buy Shoes also buy Socks & <Stockings>"},
            {"product_id": 2, "name": "Cotton sock", "price": 12, "image_url": None,
             "reason": "customers who buy Shoes also buy Socks & <Stockings>"},
        ],
    },
    "vip": {"orders": 17, "favourite_category": "Tea", "member_since": "2024-02-03",
            "coupon": {**COUPON, "code": "VIP-2345-6789-ABCD", "discount_percent": 10}},
    "lead_nurture": {"tier": "A", "score": 0.81, "lead_source": "referral", "first_order_code": "WELCOME10"},
    "mql_follow_up": {"qualified_at": "2024-05-30T10:00:00+00:00", "days_since_qualified": 2,
                      "first_order_code": "WELCOME10"},
    "abandoned_cart": {"cart_id": 77, "cart_value": 19.8, "trigger_at": "2024-05-31T10:00:00+00:00",
                       "coupon": {**COUPON, "code": "CART-2345-6789-ABCD", "discount_percent": 10},
                       "products": [{"product_id": 1, "name": "Tea <tin>", "price": 9.9, "image_url": None,
                                     "quantity": 2}]},
    "welcome": {"signup_day": "2024-05-30", "trigger_at": "2024-05-30T10:00:00+00:00"},
    "replenishment": {"product_id": 5, "product_name": "Kenya <Nyeri> – Ground 250 g", "category": "Coffee",
                      "predicted_next_date": "2024-06-04", "days_left": 3, "last_purchase_date": "2024-05-05",
                      "products": [{"product_id": 5, "name": "Kenya <Nyeri> – Ground 250 g", "price": 9.9,
                                    "image_url": None, "predicted_next_date": "2024-06-04"}]},
    "review": {"order_id": 4711, "products": [
        {"product_id": 3, "name": "Kettle", "price": 40, "image_url": "https://img.example/3.png"}]},
    "seasonal_offer": {"country": "GB", "language": "en", "timezone": "Europe/London",
                       "last_order_day": "2024-05-02", "orders_last_year": 3},
    "newsletter_welcome": {"timezone": "Europe/Berlin",
                           "signed_up_at": "2024-05-31T18:00:00+00:00",
                           "coupon": {**COUPON, "code": "NEWS-2345-6789-ABCD", "discount_percent": 10},
                           "loyalty_card": {**COUPON, "code": "CARD-2345-6789-ABCD", "discount_percent": 5}},
}


def member(campaign_id: str, **changes) -> Recipient:
    fields = {"contact_id": "c-1", "email": "ann@example.com", "first_name": "Ann",
              "attributes": ATTRIBUTES[campaign_id], "send_id": "0123abcd"}
    return Recipient(**{**fields, **changes})


@pytest.mark.parametrize("campaign_id", sorted(SPECS))
def test_every_shipped_campaign_and_variant_renders(campaign_id: str) -> None:
    spec = SPECS[campaign_id]
    for variant in spec.variants:
        message = render_message(spec, variant, member(campaign_id), renderer=Renderer())
        assert message.subject and "\n" not in message.subject
        assert "https://shop.example/unsubscribe?sid=0123abcd&amp;token=v1." in message.html
        assert "https://shop.example/unsubscribe?sid=0123abcd&token=v1." in message.text
        # RFC 8058: the https link first, then mailto; one-click by POST.
        https, mailto = message.headers["List-Unsubscribe"].split(", ")
        assert https.startswith("<https://shop.example/unsubscribe?sid=0123abcd&token=v1.") and https.endswith(">")
        assert mailto.startswith("<mailto:unsubscribe@shop.example?subject=unsubscribe%20v1.")
        assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        coupon = ATTRIBUTES[campaign_id].get("coupon")
        if coupon and spec.steps:  # a series shows the code in the step that offers it
            steps = [render_message(spec.for_step(n), variant, member(campaign_id)) for n in spec.step_numbers]
            message = next(m for m in steps if coupon["code"] in m.text)
        if coupon:
            assert coupon["code"] in message.html and coupon["code"] in message.text
            assert "valid until 7 June 2024" in message.html and "valid until 7 June 2024" in message.text
        assert "Ann" in message.text
        assert "<p>" not in message.text and "<a " not in message.text  # no HTML in the text part


def test_html_escapes_names_but_text_and_subject_do_not() -> None:
    spec = SPECS["upsell"]
    message = render_message(spec, "b", member("upsell", first_name="<script>alert(1)</script>"))
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html
    assert "Wool &lt;sock&gt;" in message.html
    assert "Socks &amp; &lt;Stockings&gt;" in message.html
    assert message.subject.startswith("<script>alert(1)</script>, goes well with")
    assert "Hi <script>alert(1)</script>," in message.text
    assert "9.90 €" in message.text and "12.00 €" in message.text


def test_upsell_shows_each_recommended_product_with_image_price_and_why() -> None:
    spec = SPECS["upsell"]
    recommended = {
        "last_category": "Shoes", "offer_category": "Hats", "offer_source": "recommendations",
        "products": [
            {"product_id": 5, "name": "Felt hat", "price": 25.5, "image_url": "https://img.example/5.png",
             "reason": "bought Trail shoe; customers who buy it buy Felt hat"},
            {"product_id": 9, "name": "Wool <gloves>", "price": 15, "image_url": None,
             "reason": "bought Trail shoe; customers who buy it buy Wool <gloves>"},
        ],
    }
    message = render_message(spec, "a", member("upsell", attributes=recommended))
    assert message.subject == "Picked for you: Hats"
    assert 'src="https://img.example/5.png"' in message.html and "25.50 €" in message.html
    assert "bought Trail shoe; customers who buy it buy Felt hat" in message.html
    assert "customers who buy it buy Wool &lt;gloves&gt;" in message.html
    assert "Felt hat, 25.50 €" in message.text and "(bought Trail shoe; customers who buy it buy Wool <gloves>)" in message.text
    assert "go best with it" in message.text and "best sellers" not in message.text
    fallback = render_message(spec, "a", member("upsell"))
    assert "best sellers" in fallback.text and "go best with it" not in fallback.text
    assert "(customers who buy Shoes also buy Socks & <Stockings>)" in fallback.text
    # A snapshot built before offer_source and reason existed still renders, as the category offer.
    old = {"last_category": "Shoes", "offer_category": "Hats",
           "products": [{"product_id": 4, "name": "Cap", "price": 20, "image_url": None}]}
    before = render_message(spec, "b", member("upsell", attributes=old))
    assert "best sellers" in before.text and "Cap, 20.00 €" in before.text and "(" not in before.text.split("Cap")[1][:30]


def test_missing_personalization_fails_instead_of_rendering_blank() -> None:
    spec = SPECS["winback"]
    broken = member("winback", attributes={"last_category": "Shoes", "coupon": COUPON, "last_resort": False})
    with pytest.raises(RenderError, match="coupon_percent"):
        render_message(spec, "a", broken, renderer=Renderer())


def test_each_step_of_a_series_renders_its_own_template_and_subject() -> None:
    spec = SPECS["welcome"]
    rendered = [render_message(spec.for_step(n), "a", member("welcome")) for n in spec.step_numbers]
    assert [m.subject for m in rendered] == ["Welcome, Ann!", "Ann, three tips for your next order",
                                             "A week with us: 10% off your second order"]
    assert "glad you are here" in rendered[0].text and "Three tips" in rendered[1].text
    assert "SECOND10" in rendered[2].html
    with pytest.raises(ValueError, match=r"steps 1\.\.3"):
        spec.for_step(4)


def test_abandoned_cart_steps_remind_offer_and_close() -> None:
    spec = SPECS["abandoned_cart"]
    first, second, last = (render_message(spec.for_step(n), "a", member("abandoned_cart")) for n in (1, 2, 3))
    assert "2 x Tea <tin>" in first.text and "Tea &lt;tin&gt;" in first.html and "CART-2345" not in first.text
    assert second.subject == "Still thinking it over? 10% off your cart" and "CART-2345-6789-ABCD" in second.text
    assert "not be kept much longer" in last.text and "/cart/77?" in last.text


def test_lead_nurture_copy_follows_the_tier() -> None:
    spec = SPECS["lead_nurture"]
    hot = render_message(spec, "a", member("lead_nurture"))
    warm = render_message(spec, "a", member("lead_nurture", attributes={
        "tier": "C", "score": 0.2, "lead_source": "social", "first_order_code": None}))
    assert "WELCOME10" in hot.text and hot.subject == "Ann, 10% off your first order"
    assert "WELCOME10" not in warm.text and "best sellers" in warm.text and warm.subject == "Ann, where to start"


def test_missing_first_name_uses_the_fallback() -> None:
    message = render_message(SPECS["birthday"], "a", member("birthday", first_name=None))
    assert message.subject == "Happy birthday, friend!"


def test_templates_compile_once_per_campaign_and_variant() -> None:
    renderer = Renderer()
    spec = SPECS["upsell"]
    for i in range(50):
        for variant in ("a", "b"):
            renderer.render(spec, variant, member("upsell", contact_id=f"c-{i}", send_id=f"s{i}"))
    assert renderer.compilations == 2


def test_unknown_variant_is_an_error() -> None:
    with pytest.raises(KeyError, match="has no variant 'z'"):
        render_message(SPECS["birthday"], "z", member("birthday"))


def test_mapping_members_are_accepted() -> None:
    message = render_message(SPECS["birthday"], "a", {
        "contact_id": "c-9", "email": "bo@example.com", "first_name": "Bo",
        "attributes": {"is_customer": False, "coupon": COUPON}, "send_id": "feed"})
    assert "sid=feed" in message.text and "Bo" in message.subject


@pytest.mark.parametrize(("language", "country", "template_word", "subject_word"), [
    ("de", "DE", "Wintersorten", "Die Wintersorten sind da, Ann"),
    ("de", "AT", "Wintersorten", "Die Wintersorten sind da, Ann"),
    ("fr", "FR", "boissons d'hiver", "Les boissons d'hiver sont de retour, Ann"),
    ("en", "DE", "winter warmers", "Winter warmers are back, Ann"),   # German country, English reader
    (None, "ES", "winter warmers", "Winter warmers are back, Ann"),   # unknown language: the default
])
def test_seasonal_offer_picks_subject_and_template_by_language(language, country, template_word,
                                                               subject_word) -> None:
    spec = SPECS["seasonal_offer"]
    attributes = {**ATTRIBUTES["seasonal_offer"], "language": language, "country": country}
    message = render_message(spec, "a", member("seasonal_offer", attributes=attributes), renderer=Renderer())
    assert message.subject == subject_word
    assert template_word in message.text and template_word in message.html.replace("&#39;", "'")


def test_newsletter_welcome_shows_codes_and_expiry_in_local_time() -> None:
    spec = SPECS["newsletter_welcome"]
    message = render_message(spec, "a", member("newsletter_welcome"), renderer=Renderer())
    assert "NEWS-2345-6789-ABCD" in message.text and "CARD-2345-6789-ABCD" in message.text
    # expires_at 2024-06-08T00:00Z is 02:00 summer time in Berlin.
    assert "Both expire on 8 June 2024, 02:00 CEST." in message.text
    us = {**ATTRIBUTES["newsletter_welcome"], "timezone": "America/Los_Angeles"}
    message = render_message(spec, "a", member("newsletter_welcome", attributes=us), renderer=Renderer())
    assert "Both expire on 7 June 2024, 17:00 PDT." in message.text
    unknown = {**ATTRIBUTES["newsletter_welcome"], "timezone": None}
    message = render_message(spec, "a", member("newsletter_welcome", attributes=unknown), renderer=Renderer())
    assert "Both expire on 8 June 2024, 00:00 UTC." in message.text


def test_a_loyalty_card_campaign_refuses_a_member_without_a_card() -> None:
    attributes = {k: v for k, v in ATTRIBUTES["newsletter_welcome"].items() if k != "loyalty_card"}
    with pytest.raises(RenderError, match="gives a loyalty card but contact 'c-1' has none"):
        render_message(SPECS["newsletter_welcome"], "a", member("newsletter_welcome", attributes=attributes))
