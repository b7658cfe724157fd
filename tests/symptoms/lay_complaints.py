"""A labelled set of complaints written the way patients and pet owners write them (issue 18), for the symptom
parser: each with the canonical symptoms present and negated (Kaggle-41 vocabulary ids).

Built from complaint templates (sentence patterns: conjunctions, negation with scope and termination, pseudo-
negations such as "can't stop", severity words, several symptoms per clause, pet owners, sentences with no symptom)
filled with lay phrasings from three pools (the same symptoms said differently). The split is by template AND by
phrasing:

* ``tune``: templates 1-36, odd ones filled from pool ``A``, even ones from pool ``B``; templates 37-56 filled from
  pool ``C``; pools ``D`` and ``E`` (:data:`FREE_TEXT`, :data:`FREE_TEXT_E`: complaints written whole rather than
  from templates). Pools B to E were each the held-out half in turn (git: "lay complaints: a fresh held-out pool C",
  "... pool D, free text, blind", "... pool E ..."); each was measured blind once, then its failures were read while
  the parser was improved, so they are tuning data now.
* ``test``: pool ``F`` (:data:`FREE_TEXT_F`), free complaints committed before pool E's failures were read and
  before the parser was run on any of them (git: "lay complaints: pool F, free text, blind"), so neither a sentence
  nor a lay phrasing of the test half is seen while synonyms and rules are tuned.

All pools were written by the parser's authors, so the test half is independent of the tuning, not of the people.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

__all__ = ["FREE_TEXT", "FREE_TEXT_E", "FREE_TEXT_F", "Complaint", "complaints", "score"]


@dataclass(frozen=True)
class Complaint:
    template: int
    half: str  # "tune" | "test"
    pool: str  # "A" to "E" (tune) | "F" (test)
    text: str
    present: frozenset[str]
    negated: frozenset[str]


# symptom id -> (pool A, pool B, pool C phrasing): noun phrases that read after "I have" / "no"
NOUNS: dict[str, tuple[str, str, str]] = {
    "itching": ("itchy skin", "an itch that won't go away", "itchiness all over"),
    "skin_rash": ("a rash", "red blotches on my skin", "an angry red rash"),
    "continuous_sneezing": ("constant sneezing", "sneezing fits", "non-stop sneezing"),
    "chills": ("the chills", "cold shivers", "bouts of chills"),
    "joint_pain": ("achy joints", "aching in my joints", "sore joints"),
    "stomach_pain": ("tummy ache", "a pain in my stomach", "a sore stomach"),
    "vomiting": ("throwing up", "sick bowls all night", "puking"),
    "fatigue": ("tiredness", "no energy at all", "exhaustion"),
    "cough": ("a bad cough", "a hacking cough", "a chesty cough"),
    "high_fever": ("a high temperature", "a raging fever", "a really high temperature"),
    "mild_fever": ("a slight temperature", "a bit of a temperature", "a low-grade fever"),
    "headache": ("a pounding head", "a splitting headache", "a sore head"),
    "nausea": ("nausea", "a queasy feeling", "queasiness"),
    "diarrhoea": ("the runs", "runny poos", "the trots"),
    "dizziness": ("dizzy spells", "a woozy feeling", "lightheadedness"),
    "chest_pain": ("chest pains", "a tight pain across my chest", "a crushing feeling in my chest"),
    "back_pain": ("a bad back", "lower back ache", "pain in my lower back"),
    "runny_nose": ("a runny nose", "a drippy nose", "a streaming nose"),
    "throat_irritation": ("a sore throat", "a scratchy throat", "a raw throat"),
    "redness_of_eyes": ("red eyes", "bloodshot eyes", "reddened eyes"),
    "watering_from_eyes": ("watery eyes", "weepy eyes", "streaming eyes"),
    "muscle_pain": ("aching muscles", "sore muscles all over", "muscle aches"),
    "distention_of_abdomen": ("a bloated tummy", "a swollen belly", "a distended belly"),
    "swollen_legs": ("swollen legs", "puffy ankles", "swelling in my legs"),
    "foul_smell_of_urine": ("smelly pee", "wee that smells really bad", "strong-smelling urine"),
    "dark_urine": ("dark pee", "brown wee", "pee the colour of tea"),
    "weight_loss": ("weight loss", "a lot of weight dropping off", "a drop in weight"),
    "sweating": ("heavy sweating", "night sweats", "drenching sweats"),
    "palpitations": ("a pounding heart", "a fluttery heartbeat", "heart flutters"),
    "constipation": ("constipation", "trouble going for a poo", "difficulty pooing"),
    "anxiety": ("anxiety", "a lot of worry and nerves", "panicky feelings"),
    "congestion": ("a blocked nose", "a stuffed up nose", "a bunged-up nose"),
    "skin_peeling": ("peeling skin", "skin flaking off", "flaky skin"),
    "lethargy": ("lethargy", "no get up and go", "sluggishness"),
    "loss_of_appetite": ("a poor appetite", "a loss of appetite", "a reduced appetite"),
    "breathlessness": ("shortness of breath", "trouble catching my breath", "breathing difficulties"),
    "blister": ("blisters", "little fluid bubbles on the skin", "water blisters"),
}

# symptom id -> (pool A, pool B, pool C): whole clauses
CLAUSES: dict[str, tuple[str, str, str]] = {
    # pool B's phrasing is not the issue's own example ("it stings when I wee"), which has a synonym written for it
    "burning_micturition": ("it burns when I pee", "it hurts to pass water", "weeing is painful"),
    "vomiting": ("I keep throwing up", "I can't keep anything down", "I've been sick twice this morning"),
    "itching": ("my skin is itching like mad", "I'm scratching all the time", "I itch everywhere"),
    "breathlessness": ("I get out of breath on the stairs", "I'm puffed out after a few steps", "I get winded walking to the car"),
    "headache": ("my head is killing me", "my head is throbbing", "my head aches"),
    "loss_of_appetite": ("I'm off my food", "I don't feel like eating", "I've gone off my food"),
    "dizziness": ("I feel dizzy", "everything goes woozy when I stand", "I go all light-headed when I stand up"),
    "fatigue": ("I'm worn out", "I'm shattered all the time", "I'm tired all the time"),
    "distention_of_abdomen": ("my tummy is swollen and tight", "my belly is bloated and hard", "my belly's all bloated"),
    "foul_smell_of_urine": ("my wee smells really bad", "my pee stinks", "my urine has a strong smell"),
    "runny_nose": ("my nose keeps running", "my nose won't stop dripping", "my nose is streaming"),
    "cough": ("I'm coughing a lot", "I've been coughing all week", "I keep coughing"),
    "diarrhoea": ("I've got the runs", "my poo is watery", "I keep running to the loo with loose stools"),
    "swollen_legs": ("my ankles are puffy", "my legs have swelled up", "my legs are swollen by the evening"),
    "redness_of_eyes": ("my eyes are red", "my eyes look bloodshot", "the whites of my eyes are red"),
    "chest_pain": ("my chest hurts", "there's a pain in my chest", "it hurts in the middle of my chest"),
    "stomach_pain": ("my tummy hurts", "my stomach is aching", "my stomach hurts"),
    "watering_from_eyes": ("my eyes are watering", "my eyes won't stop streaming", "my eyes keep watering"),
}

# pet owners: (pool A, pool B, pool C) clauses about the animal
PET: dict[str, tuple[str, str, str]] = {
    "itching": ("he keeps scratching", "she's been chewing and scratching at her skin", "she's constantly licking and scratching herself"),
    "vomiting": ("he's been sick three times", "she keeps bringing her food back up", "he threw up twice this morning"),
    "diarrhoea": ("she has diarrhoea", "he's got an upset tummy with loose poo", "his poo is runny"),
    "loss_of_appetite": ("he's off his food", "she won't touch her dinner", "she's not interested in her food"),
    "lethargy": ("she's very lethargic", "he just mopes around and sleeps", "he's really listless"),
    "cough": ("he has a honking cough", "she keeps coughing at night", "she's got a dry cough"),
    "weight_loss": ("she's lost weight", "you can see his ribs now", "he's been losing weight"),
    "skin_rash": ("he has a red rash on his belly", "there are red bumps on her tummy", "there's a rash on his back legs"),
}

# "can't stop ..." and other phrasings whose negative words do not negate (all present)
PSEUDO: dict[str, tuple[str, str, str]] = {
    "continuous_sneezing": ("I can't stop sneezing", "I haven't stopped sneezing since Monday", "the sneezing just won't stop"),
    "cough": ("I can't stop coughing", "the coughing never stops", "I haven't stopped coughing all day"),
    "itching": ("I can't stop scratching", "the itching won't stop", "I can't stop itching"),
    "breathlessness": ("I can't catch my breath", "I can't breathe properly", "I can't get enough air"),
    "loss_of_smell": ("I can't smell anything", "I can't smell my coffee any more", "I can't smell a thing"),
    "loss_of_appetite": ("I'm not eating much", "I'm not hungry at all", "I don't want to eat"),
    "altered_sensorium": ("she's not making sense", "he's not himself and seems confused", "he doesn't know where he is"),
}

NO_SYMPTOM = {
    "A": ["I'd just like a general check-up", "we moved house last week", "my dog is seven years old",
          "I have an appointment on Monday", "nothing else to report"],
    "B": ["can you tell me your opening hours", "my cat had her vaccinations in May", "I'm asking for my mum",
          "we're going on holiday next week", "no other problems"],
    "C": ["can I book for Thursday", "she's a three year old spaniel", "I'm a nurse so I know the drill",
          "we just got back from Spain", "I've already had my flu jab"],
}

# Pool D: free complaints, each written whole (no template, no shared phrasing), with misspellings, numbers,
# resolved symptoms and negative words that negate nothing. Written and committed after the parser of pool C's
# tuning was frozen and before it was run on any of them (git: "lay complaints: pool D, free text, blind"); measured
# once blind (bench/symptom_parse.py says what it scored), then tuning data. Conventions kept from pools A-C: a bare "fever"/"temperature" is high_fever, "tummy ache" is
# stomach_pain, "feel sick" is nausea and "been sick" is vomiting. (text, present, negated)
FREE_TEXT: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("Ive had a really bad hedache since tuesday and I keep feeling sick", ("headache", "nausea"), ()),
    ("Throwing up all night and cant keep water down. No diarrhea.", ("vomiting",), ("diarrhoea",)),
    ("My throat is really sore and my nose is blocked", ("throat_irritation", "congestion"), ()),
    ("No fever and no cough, just a runny nose", ("runny_nose",), ("high_fever", "cough")),
    ("My tummy hurts and I've got the runs", ("stomach_pain", "diarrhoea"), ()),
    ("I feel dizzy when I stand up but I haven't fainted", ("dizziness",), ()),
    ("So tired lately, no energy, and I've lost weight without trying", ("fatigue", "weight_loss"), ()),
    ("Chest feels tight and I'm short of breath climbing stairs", ("chest_pain", "breathlessness"), ()),
    ("My pee burns and it smells awful", ("burning_micturition", "foul_smell_of_urine"), ()),
    ("slight temp and my muscles ache", ("mild_fever", "muscle_pain"), ()),
    ("Really high fever, shivering and sweating buckets", ("high_fever", "shivering", "sweating"), ()),
    ("My eyes are red and keep watering", ("redness_of_eyes", "watering_from_eyes"), ()),
    ("I have a rash on my arms that itches like crazy", ("skin_rash", "itching"), ()),
    ("Coughing up yellow phlegm, no blood though", ("cough", "phlegm"), ("blood_in_sputum",)),
    ("Lower back pain for a week, not shooting down my leg", ("back_pain",), ()),
    ("my knees are swollen and painful", ("knee_pain", "swelling_joints"), ()),
    ("Neck is stiff and I have a headache, no rash", ("stiff_neck", "headache"), ("skin_rash",)),
    ("I've gone yellow and my eyes look yellow too", ("yellowish_skin", "yellowing_of_eyes"), ()),
    ("My pee is very dark, like cola", ("dark_urine",), ()),
    ("constipated for a week and it hurts when I go", ("constipation", "pain_during_bowel_movements"), ()),
    ("Blood in my poo this morning", ("bloody_stool",), ()),
    ("heart pounding and fluttering in my chest at night", ("palpitations",), ()),
    ("I'm not sleeping well and feel really down", ("depression",), ()),
    ("I feel anxious all the time", ("anxiety",), ()),
    ("lost my sense of smell", ("loss_of_smell",), ()),
    ("My vision has gone blurry", ("blurred_and_distorted_vision",), ()),
    ("pain behind my eyes and a bad headache", ("pain_behind_the_eyes", "headache"), ()),
    ("swollen glands in my neck", ("swelled_lymph_nodes",), ()),
    ("My legs are really swollen", ("swollen_legs",), ()),
    ("I don't have a headache but my neck hurts", ("neck_pain",), ("headache",)),
    ("Not vomiting, just nauseous", ("nausea",), ("vomiting",)),
    ("no chest pain, no shortness of breath, no palpitations", (), ("chest_pain", "breathlessness", "palpitations")),
    ("I have a cough but no fever", ("cough",), ("high_fever",)),
    ("Denies nausea or vomiting", (), ("nausea", "vomiting")),
    ("She says she hasn't had any diarrhoea or tummy pain", (), ("diarrhoea", "stomach_pain")),
    ("My joints ache, especially my hips", ("joint_pain", "hip_joint_pain"), ()),
    ("I'm itchy all over but there's no rash", ("itching",), ("skin_rash",)),
    ("I've been peeing loads, way more than usual", ("polyuria",), ()),
    ("I'm hungry all the time even after eating", ("excessive_hunger",), ()),
    ("I've put on a lot of weight recently", ("weight_gain",), ()),
    ("my hands and feet are always cold", ("cold_hands_and_feets",), ()),
    ("I bruise really easily", ("bruising",), ()),
    ("My speech is slurred and the whole left side of my body is weak", ("slurred_speech", "weakness_of_one_body_side"),
     ()),
    ("I keep losing my balance", ("loss_of_balance",), ()),
    ("painful ulcers on my tongue", ("ulcers_on_tongue",), ()),
    ("lots of spots full of pus on my face", ("pus_filled_pimples",), ()),
    ("The skin on my hands is peeling", ("skin_peeling",), ()),
    ("I've got blisters on my feet, they're not bleeding", ("blister",), ()),
    ("Feeling very weak in my muscles", ("muscle_weakness",), ()),
    ("I have sinus pressure and a stuffy nose", ("sinus_pressure", "congestion"), ()),
    ("Can't stop sweating at night", ("sweating",), ()),
    ("I haven't been able to eat much, no appetite", ("loss_of_appetite",), ()),
    ("My stomach is bloated and swollen", ("distention_of_abdomen",), ()),
    ("Hi, I'd like to renew my prescription please", (), ()),
    ("Is the clinic open on Sunday?", (), ()),
    ("My husband says I've been really irritable and snappy", ("irritability",), ()),
    ("Mood all over the place lately", ("mood_swings",), ()),
    ("wheezy and breathless at night", ("breathlessness",), ()),
    ("headache, temperature of 39.5 and a stiff neck", ("headache", "high_fever", "stiff_neck"), ()),
    ("sore throat but I can swallow fine", ("throat_irritation",), ()),
    ("no runny nose or sneezing, but my eyes are watering", ("watering_from_eyes",), ("runny_nose", "continuous_sneezing")),
    ("The pain is in my lower back and it's worse when I bend", ("back_pain",), ()),
    ("I feel faint and dizzy", ("dizziness",), ()),
    ("I get out of breath easily and my ankles swell", ("breathlessness", "swollen_legs"), ()),
    ("vomitting and diarhoea since last night", ("vomiting", "diarrhoea"), ()),
    ("really bad stomache ache", ("stomach_pain",), ()),
    ("I have a temprature and feel nauseus", ("high_fever", "nausea"), ()),
    ("ive been coughin all week and my chest hurts when I cough", ("cough", "chest_pain"), ()),
    ("Dizzyness and headaches on and off", ("dizziness", "headache"), ()),
    ("I'm not coughing but I do feel breathless", ("breathlessness",), ("cough",)),
    ("no sore throat. runny nose and sneezing though", ("runny_nose", "continuous_sneezing"), ("throat_irritation",)),
    ("My urine smells strong, no pain when I pee", ("foul_smell_of_urine",), ("burning_micturition",)),
    ("The rash isn't itchy", ("skin_rash",), ("itching",)),
    ("I don't feel sick but I've got diarrhoea", ("diarrhoea",), ("nausea",)),
    ("No headache today, the dizziness has gone too", (), ("headache", "dizziness")),
    ("Yesterday I had a fever but it's gone now; still coughing", ("cough",), ("high_fever",)),
    ("She's been very tired and off her food", ("fatigue", "loss_of_appetite"), ()),
    ("I've had a very high temperature for three days", ("high_fever",), ()),
    ("Mild headache and a slightly sore throat", ("headache", "throat_irritation"), ()),
    ("Severe pain in my chest going down my left arm", ("chest_pain",), ()),
    ("Stomach pain, nausea and vomiting, no diarrhoea and no fever", ("stomach_pain", "nausea", "vomiting"),
     ("diarrhoea", "high_fever")),
    ("I've got a bit of a temperature, nothing major", ("mild_fever",), ()),
    ("I'm burning up and my head is pounding", ("high_fever", "headache"), ()),
    ("Back ache and neck ache from sleeping funny", ("back_pain", "neck_pain"), ()),
    ("Feeling short of breath, I can't walk far", ("breathlessness",), ()),
    ("Had a nosebleed earlier, no other problems", (), ()),
    ("I've been feeling anxious and my heart flutters", ("anxiety", "palpitations"), ()),
    # pet owners
    ("My dog has been vomiting and won't eat", ("vomiting", "loss_of_appetite"), ()),
    ("Our cat keeps scratching her ears and there's a rash on her neck", ("itching", "skin_rash"), ()),
    ("He's had diarrhoea twice today but no vomiting", ("diarrhoea",), ("vomiting",)),
    ("my puppy is coughing and sneezing a lot", ("cough", "continuous_sneezing"), ()),
    ("The dog seems really lethargic and is drinking loads", ("lethargy",), ()),
    ("Our old cat is losing weight", ("weight_loss",), ()),
    ("She's limping and her back leg looks swollen", ("painful_walking", "swollen_legs"), ()),
    ("no vomiting or diarrhoea, he's just very quiet and sleepy", ("lethargy",), ("vomiting", "diarrhoea")),
    ("The horse is sweating and keeps looking at his belly", ("sweating",), ()),
    ("My rabbit isn't eating and hasn't pooed today", ("loss_of_appetite", "constipation"), ()),
    ("dog's skin is flaky and he's losing fur", ("skin_peeling",), ()),
    ("She's been breathing really fast and struggling for air", ("breathlessness",), ()),
    ("My cat has been throwing up hairballs but otherwise fine", ("vomiting",), ()),
    ("Our dog's belly is swollen and hard", ("distention_of_abdomen",), ()),
    ("The kitten has runny eyes and a snotty nose", ("watering_from_eyes", "runny_nose"), ()),
    ("He's shaking and won't settle", ("shivering", "restlessness"), ()),
    ("My dog has a cough but no temperature", ("cough",), ("high_fever",)),
    ("She drinks a lot and pees a lot", ("polyuria",), ()),
    ("My dog is 4 and we just moved to a new flat", (), ()),
    ("The cat's eyes are red and sore", ("redness_of_eyes",), ()),
]

# Pool E: free complaints like pool D's, written and committed (git: "lay complaints: pool E, free text, blind")
# before pool D's failures were read and before the parser was run on any of them; measured once blind (after the
# changes pool D's failures led to), then tuning data. Conventions as pool D's. (text, present, negated)
FREE_TEXT_E: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("hey so for the last couple of days ive had a sore throat and a cough, no temperature tho",
     ("throat_irritation", "cough"), ("high_fever",)),
    ("I've had diarrhea three times today and my stomach hurts", ("diarrhoea", "stomach_pain"), ()),
    ("Fever of 102 and chills", ("high_fever", "chills"), ()),
    ("stuffy nose, sneezing and watery eyes", ("congestion", "continuous_sneezing", "watering_from_eyes"), ()),
    ("pt c/o chest pain and shortness of breath, denies palpitations", ("chest_pain", "breathlessness"),
     ("palpitations",)),
    ("I'm so exhausted I can barely get out of bed", ("fatigue",), ()),
    ("Since Friday I've been feeling nauseous and lightheaded", ("nausea", "dizziness"), ()),
    ("My lower back is killing me", ("back_pain",), ()),
    ("I've noticed my skin and the whites of my eyes have turned yellow", ("yellowish_skin", "yellowing_of_eyes"), ()),
    ("It hurts to pee and I keep getting a fever", ("burning_micturition", "high_fever"), ()),
    ("Not much appetite and I've lost about 5 kg", ("loss_of_appetite", "weight_loss"), ()),
    ("No cough or cold symptoms, but I've got a really bad headache", ("headache",), ("cough",)),
    ("My heart keeps skipping beats", ("palpitations",), ()),
    ("I get really bad cramps in my legs at night", ("cramps",), ()),
    ("My joints are really painful, especially in the mornings", ("joint_pain",), ()),
    ("I've been coughing up blood", ("cough", "blood_in_sputum"), ()),
    ("I'm constantly thirsty and weeing all the time", ("polyuria",), ()),
    ("I have a high temperature and a rash that won't fade", ("high_fever", "skin_rash"), ()),
    ("My face and eyes look puffy in the morning", ("puffy_face_and_eyes",), ()),
    ("Things look blurry and I keep getting headaches", ("blurred_and_distorted_vision", "headache"), ()),
    ("Feeling very low and I've lost interest in everything", ("depression",), ()),
    ("I can't concentrate on anything at work", ("lack_of_concentration",), ()),
    ("My stool has blood in it and it hurts to go", ("bloody_stool", "pain_during_bowel_movements"), ()),
    ("I've got an itchy bum", ("irritation_in_anus",), ()),
    ("Really bad indigestion after every meal", ("indigestion",), ()),
    ("I have heartburn most evenings", ("acidity",), ()),
    ("I've no energy and my muscles feel weak", ("fatigue", "muscle_weakness"), ()),
    ("No headache, no fever, no neck stiffness", (), ("headache", "high_fever", "stiff_neck")),
    ("I had chest pain yesterday but it's gone now", (), ("chest_pain",)),
    ("I wouldn't say I'm breathless, just a bit wheezy", (), ("breathlessness",)),
    ("There are red spots all over my body", ("red_spots_over_body",), ()),
    ("Sneezing non stop and my nose won't stop running", ("continuous_sneezing", "runny_nose"), ()),
    ("I'm sweating a lot and my heart is beating really fast", ("sweating", "fast_heart_rate"), ()),
    ("I feel like the room is spinning", ("spinning_movements",), ()),
    ("My legs feel weak and I'm unsteady on my feet", ("weakness_in_limbs", "unsteadiness"), ()),
    ("Nothing wrong really, just wanted advice about travel vaccines", (), ()),
    ("Hello, can I change my appointment to next week?", (), ()),
    ("Mild fever and a bit of a cough, otherwise ok", ("mild_fever", "cough"), ()),
    ("severe stomach pain on the right side, vomiting twice", ("stomach_pain", "vomiting"), ()),
    ("I've had the runs and been throwing up, no blood", ("diarrhoea", "vomiting"), ("bloody_stool",)),
    ("My ankles swell up by the end of the day", ("swollen_legs",), ()),
    ("My nails are brittle and keep breaking", ("brittle_nails",), ()),
    ("blackheads all over my nose", ("blackheads",), ()),
    ("aching muscles and a sore throat, but no runny nose", ("muscle_pain", "throat_irritation"), ("runny_nose",)),
    ("My belly is swollen and I have no appetite", ("distention_of_abdomen", "loss_of_appetite"), ()),
    ("I can't breathe properly when I lie down", ("breathlessness",), ()),
    ("I've got a temperature and a stiff neck and light hurts my eyes", ("high_fever", "stiff_neck"), ()),
    ("Headache behind my eyes", ("headache", "pain_behind_the_eyes"), ()),
    # pet owners
    ("My dog keeps throwing up yellow foam", ("vomiting",), ()),
    ("Our cat hasn't eaten in two days and is hiding", ("loss_of_appetite",), ()),
    ("The puppy has bloody diarrhoea", ("diarrhoea", "bloody_stool"), ()),
    ("My dog is itching constantly and losing hair", ("itching",), ()),
    ("He's coughing like he has something stuck in his throat", ("cough",), ()),
    ("Our horse isn't eating and is sweating a lot", ("loss_of_appetite", "sweating"), ()),
    ("My cat is drinking and peeing much more than normal", ("polyuria",), ()),
    ("She's been vomiting but no diarrhoea and she's still drinking", ("vomiting",), ("diarrhoea",)),
    ("My dog's eyes are red and goopy", ("redness_of_eyes",), ()),
    ("No coughing or sneezing, but my cat's nose is runny", ("runny_nose",), ("cough", "continuous_sneezing")),
    ("My rabbit seems lethargic and isn't eating", ("lethargy", "loss_of_appetite"), ()),
    ("My old dog is getting thin", ("weight_loss",), ()),
    ("She has a rash on her tummy", ("skin_rash",), ()),
    ("The dog's belly looks bloated and tight", ("distention_of_abdomen",), ()),
    ("my cat sneezes all the time and has watery eyes", ("continuous_sneezing", "watering_from_eyes"), ()),
    ("He was limping yesterday but he's fine today", (), ("painful_walking",)),
    ("We've just adopted a kitten and want to register", (), ()),
    ("my dog is shivering and seems anxious", ("shivering", "anxiety"), ()),
    ("Hes not drinking and his pee is really dark", ("dark_urine",), ()),
    ("The cat has lost weight and is always hungry", ("weight_loss", "excessive_hunger"), ()),
    ("Our dog has been constipated and strains to poo", ("constipation",), ()),
    ("She gets breathless after short walks and coughs at night", ("breathlessness", "cough"), ()),
]

# Pool F: free complaints, more of them negated (pool E has 14 negated symptoms, too few to measure negation),
# written and committed (git: "lay complaints: pool F, free text, blind") before pool E's failures were read and before
# the parser was run on any of them; the test half since. Conventions as pool D's. (text, present, negated)
FREE_TEXT_F: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("My son has had a temperature since last night and won't eat his breakfast", ("high_fever", "loss_of_appetite"),
     ()),
    ("Mum is confused and doesn't know what day it is", ("altered_sensorium",), ()),
    ("No vomiting, no diarrhoea, no fever - just a headache", ("headache",), ("vomiting", "diarrhoea", "high_fever")),
    ("He denies any chest pain but says he gets breathless on exertion", ("breathlessness",), ("chest_pain",)),
    ("I haven't had a cough or a sore throat, but I've lost my sense of taste and smell", ("loss_of_smell",),
     ("cough", "throat_irritation")),
    ("Her ankles are swollen and she's short of breath lying flat", ("swollen_legs", "breathlessness"), ()),
    ("Terrible tummy pain and the runs", ("stomach_pain", "diarrhoea"), ()),
    ("I've had a runny nose and a tickly cough for a week, no temperature", ("runny_nose", "cough"), ("high_fever",)),
    ("The baby has a rash but no fever and is feeding well", ("skin_rash",), ("high_fever",)),
    ("my eyes are yellow and my wee is dark", ("yellowing_of_eyes", "dark_urine"), ()),
    ("I've been feeling really anxious and can't sit still", ("anxiety", "restlessness"), ()),
    ("My right knee is sore", ("knee_pain",), ()),
    ("I've been sweating at night and losing weight", ("sweating", "weight_loss"), ()),
    ("No blood in my stools and no pain when I go", (), ("bloody_stool", "pain_during_bowel_movements")),
    ("He's been vomiting since this morning, but he hasn't got a temperature", ("vomiting",), ("high_fever",)),
    ("I keep feeling dizzy, especially when I turn my head", ("dizziness",), ()),
    ("There's no swelling in my legs", (), ("swollen_legs",)),
    ("I'm not short of breath at all", (), ("breathlessness",)),
    ("She has a sore throat and swollen glands", ("throat_irritation", "swelled_lymph_nodes"), ()),
    ("Red eyes and a blocked nose", ("redness_of_eyes", "congestion"), ()),
    ("I've had heartburn and indigestion for weeks", ("acidity", "indigestion"), ()),
    ("Not coughing any more but still really tired", ("fatigue",), ("cough",)),
    ("No rash, no joint pain, no headache", (), ("skin_rash", "joint_pain", "headache")),
    ("Pt reports nausea, denies vomiting and abdominal pain", ("nausea",), ("vomiting", "abdominal_pain")),
    ("My muscles are aching and I've got a high temperature", ("muscle_pain", "high_fever"), ()),
    ("I've had loose stools but no tummy pain", ("diarrhoea",), ("stomach_pain",)),
    ("I've had a really stiff neck since I woke up", ("stiff_neck",), ()),
    ("There's blood when I cough", ("blood_in_sputum", "cough"), ()),
    ("My heart is racing and I feel faint", ("fast_heart_rate", "dizziness"), ()),
    ("I've got a pounding headache but my neck isn't stiff", ("headache",), ("stiff_neck",)),
    ("Everything I eat gives me indigestion", ("indigestion",), ()),
    ("my vision is blurred in one eye", ("blurred_and_distorted_vision",), ()),
    ("I'm passing a lot of wind", ("passage_of_gases",), ()),
    ("Pain in my lower back and down my leg", ("back_pain",), ()),
    ("My hands and feet feel cold all the time", ("cold_hands_and_feets",), ()),
    ("I'm not depressed or anxious", (), ("depression", "anxiety")),
    ("Slight fever and a runny nose", ("mild_fever", "runny_nose"), ()),
    ("I've been constipated but there's no blood", ("constipation",), ("bloody_stool",)),
    ("Hi, just checking if you have flu jabs available", (), ()),
    ("I would like to speak to the doctor about my medication", (), ()),
    ("She's got a really high fever and a bad cough", ("high_fever", "cough"), ()),
    ("No nausea today, but my stomach still hurts", ("stomach_pain",), ("nausea",)),
    ("I get short of breath and my chest feels tight when I exercise", ("breathlessness", "chest_pain"), ()),
    ("My gums bleed when I brush my teeth", (), ()),
    ("lots of phlegm and a blocked nose, but no fever", ("phlegm", "congestion"), ("high_fever",)),
    # pet owners
    ("My dog has been sick three times and has diarrhoea", ("vomiting", "diarrhoea"), ()),
    ("the cat isn't eating and she's not drinking either", ("loss_of_appetite",), ()),
    ("my dog is scratching a lot but I can't see any rash", ("itching",), ("skin_rash",)),
    ("He's coughing but doesn't seem to be in pain", ("cough",), ()),
    ("Our horse has a runny nose and a cough, no fever", ("runny_nose", "cough"), ("high_fever",)),
    ("My parrot has been sneezing and his eyes are watery", ("continuous_sneezing", "watering_from_eyes"), ()),
    ("The puppy is very lethargic and has been vomiting", ("lethargy", "vomiting"), ()),
    ("She keeps licking and scratching her paws", ("itching",), ()),
    ("My cat has lost a lot of weight over the summer", ("weight_loss",), ()),
    ("No vomiting, no diarrhoea, but he's off his food", ("loss_of_appetite",), ("vomiting", "diarrhoea")),
    ("My dog's stomach looks swollen", ("distention_of_abdomen",), ()),
    ("The horse is pawing the ground and sweating, but no fever", ("sweating",), ("high_fever",)),
    ("Our dog has been limping for two days", ("painful_walking",), ()),
    ("There's no blood in his poo but it's very runny", ("diarrhoea",), ("bloody_stool",)),
    ("The kitten keeps sneezing but her eyes aren't watery", ("continuous_sneezing",), ("watering_from_eyes",)),
    ("My dog has itchy skin on his belly", ("itching",), ()),
    ("He's drinking loads and weeing everywhere", ("polyuria",), ()),
    ("She's been coughing and gagging at night", ("cough",), ()),
    ("My cat is fine, I just need to book her vaccinations", (), ()),
    ("The dog isn't limping but his leg is swollen", ("swollen_legs",), ("painful_walking",)),
]

# (pattern, [slot kinds]); slot kinds: p/n (noun phrase, present/negated), c (clause, present), q (pseudo, present),
# e (pet clause, present). The template number decides the half: odd -> tune, even -> test.
TEMPLATES: list[tuple[str, list[str]]] = [
    ("I have {0}", ["p"]),
    ("I've got {0} and {1}", ["p", "p"]),
    ("{0}, {1} and {2}", ["p", "p", "p"]),
    ("no {0}", ["n"]),
    ("{0} but no {1}", ["p", "n"]),
    ("no {0} but {1}", ["n", "p"]),
    ("{0}, not {1}", ["p", "n"]),
    ("I have {0} without {1}", ["p", "n"]),
    ("denies {0}", ["n"]),
    ("I haven't had {0}", ["n"]),
    ("she doesn't have {0} or {1}", ["n", "n"]),
    ("no {0}, no {1}, just {2}", ["n", "n", "p"]),
    ("{0} since yesterday", ["p"]),
    ("had {0} for three days now", ["p"]),
    ("really bad {0} and {1}", ["p", "p"]),
    ("{0}, although there's no {1}", ["p", "n"]),
    ("{0} and {1}", ["c", "c"]),
    ("{0}, and I also have {1}", ["c", "p"]),
    ("{0} but there's been no sign of {1}", ["c", "n"]),
    ("{0}", ["c"]),
    ("{0}. {1}.", ["e", "e"]),
    ("{0} and {1}, but no {2}", ["e", "e", "n"]),
    ("my dog is fine except {0}", ["e"]),
    ("{0}", ["q"]),
    ("{0} and {1}", ["q", "p"]),
    ("{0}, no {1} though", ["q", "n"]),
    ("{0}, {1}", ["c", "q"]),
    ("{0} but I don't have {1}", ["c", "n"]),
    ("not {0}, but {1}", ["n", "p"]),
    ("{0} with {1} and {2}", ["p", "p", "p"]),
    ("{0}", ["x"]),
    ("{0}; {1}", ["x", "p"]),
    ("{0} and I don't have {1} or {2}", ["c", "n", "n"]),
    ("I had {0} last week but that's gone now, today it's {1}", ["n", "p"]),
    ("{0}, that's all", ["x"]),
    ("{0}, thanks", ["x"]),
    # 37-56: pool C (the test half until pool D)
    ("For the past week I've had {0}", ["p"]),
    ("Been suffering with {0} and {1} lately", ["p", "p"]),
    ("{0}. No {1}.", ["c", "n"]),
    ("There's no {0} or {1}, only {2}", ["n", "n", "p"]),
    ("I don't think I have {0}, but I do have {1}", ["n", "p"]),
    ("Woke up with {0}", ["p"]),
    ("{0} on and off, and {1}", ["p", "c"]),
    ("No {0}. {1}.", ["n", "c"]),
    ("{0} - not {1} though", ["c", "n"]),
    ("{0}, but we haven't seen any {1}", ["e", "n"]),
    ("{0} plus {1}", ["p", "p"]),
    ("Mainly {0}, also {1}", ["p", "c"]),
    ("{0} and I have {1}, no {2} and no {3}", ["c", "p", "n", "n"]),
    ("{0}", ["e"]),
    ("Since the weekend {0}, but thankfully no {1}", ["c", "n"]),
    ("{0} and {1} too", ["q", "c"]),
    ("{0}", ["x"]),
    ("Hi, {0}. Any advice?", ["x"]),
    ("{0} and I've also got {1}, without any {2}", ["c", "p", "n"]),
    ("{0}; otherwise fine", ["q"]),
]
FIRST_POOL_C_TEMPLATE = 37
FIRST_POOL_D_TEMPLATE = len(TEMPLATES) + 1  # pools D and E: one "template" per free complaint
FIRST_TEST_TEMPLATE = FIRST_POOL_D_TEMPLATE + len(FREE_TEXT) + len(FREE_TEXT_E)


def _pool(kind: str, pool: str) -> list[tuple[str, str]]:
    k = "ABC".index(pool)
    table = {"p": NOUNS, "n": NOUNS, "c": CLAUSES, "q": PSEUDO, "e": PET}.get(kind)
    if table is None:
        return [(s, "") for s in NO_SYMPTOM[pool]]
    return [(v[k], sid) for sid, v in table.items()]


def _bare(pattern: str, slot: int, template: int) -> bool:
    """Whether a negated slot reads without its article: always in templates 1-36 ("denies bad cough"), in pool C
    only after a word that takes a bare noun ("no chesty cough", but "I don't think I have a sore head")."""
    if template < FIRST_POOL_C_TEMPLATE:
        return True
    before = pattern[: pattern.index(f"{{{slot}}}")]
    return bool(re.search(r"\b(?:no|any|or|denies|not)\s+$", before, re.IGNORECASE))


def complaints(per_template: int = 10) -> list[Complaint]:
    out: list[Complaint] = []
    for t, (pattern, slots) in enumerate(TEMPLATES, start=1):
        pool = "C" if t >= FIRST_POOL_C_TEMPLATE else "A" if t % 2 else "B"
        pools = [_pool(kind, pool) for kind in slots]
        # walk the pools in step, each from its own offset, skipping fillings that repeat a symptom
        made = 0
        for k in itertools.count():
            if made == per_template or k > 200:
                break
            pick = [pools[j][(k * (j + 3) + t * 7 + j * 5) % len(pools[j])] for j in range(len(slots))]
            ids = [sid for _, sid in pick if sid]
            if len(set(ids)) != len(ids):
                continue
            words = [re.sub(r"^(?:a|an|the) ", "", p) if kind == "n" and _bare(pattern, j, t) else p
                     for j, ((p, _), kind) in enumerate(zip(pick, slots, strict=True))]
            text = pattern.format(*words)  # negated slots without their article: "no rash", "denies bad cough"
            text = text[0].upper() + text[1:]
            present = frozenset(sid for (_, sid), kind in zip(pick, slots, strict=True) if sid and kind != "n")
            negated = frozenset(sid for (_, sid), kind in zip(pick, slots, strict=True) if sid and kind == "n")
            c = Complaint(t, "tune", pool, text, present, negated)
            if c not in out:
                out.append(c)
                made += 1
    free = ([("tune", "D", x) for x in FREE_TEXT] + [("tune", "E", x) for x in FREE_TEXT_E]
            + [("test", "F", x) for x in FREE_TEXT_F])
    for t, (half, pool, (text, present_ids, negated_ids)) in enumerate(free, start=FIRST_POOL_D_TEMPLATE):
        out.append(Complaint(t, half, pool, text, frozenset(present_ids), frozenset(negated_ids)))
    return out


def score(items: list[Complaint], parsed: list[tuple[set[str], set[str]]]) -> dict[str, float]:
    """Precision and recall of present and of negated symptoms (micro over complaints), and the share of complaints
    with both sets exactly right. ``parsed``: (present, negated) per complaint."""
    counts = {k: 0 for k in ("tp_p", "fp_p", "fn_p", "tp_n", "fp_n", "fn_n", "exact")}
    for c, (pres, neg) in zip(items, parsed, strict=True):
        counts["tp_p"] += len(pres & c.present)
        counts["fp_p"] += len(pres - c.present)
        counts["fn_p"] += len(c.present - pres)
        counts["tp_n"] += len(neg & c.negated)
        counts["fp_n"] += len(neg - c.negated)
        counts["fn_n"] += len(c.negated - neg)
        counts["exact"] += pres == c.present and neg == c.negated

    def ratio(a: int, b: int) -> float:
        return a / b if b else 1.0

    return {
        "present_precision": ratio(counts["tp_p"], counts["tp_p"] + counts["fp_p"]),
        "present_recall": ratio(counts["tp_p"], counts["tp_p"] + counts["fn_p"]),
        "negated_precision": ratio(counts["tp_n"], counts["tp_n"] + counts["fp_n"]),
        "negated_recall": ratio(counts["tp_n"], counts["tp_n"] + counts["fn_n"]),
        "exact_match": counts["exact"] / len(items),
        "complaints": float(len(items)),
    }
