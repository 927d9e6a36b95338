namespace EdgeSlm.Models.Conversion;

/// <summary>
/// The sentences the converter runs through a model to measure its activations (<see cref="Calibration"/>): what an
/// edge module hears (commands, questions, timers, sensor events, small talk), written for EdgeSlm and expanded from
/// templates with a fixed seed, so every conversion sees the same text. None of it comes from an evaluation set.
/// GPTQ needs more tokens than a linear layer has inputs to estimate their correlations (3,252 with the 24 written
/// sentences, for inputs of up to 1,536), which is why the templates are expanded rather than listed.
/// </summary>
internal static class CalibrationText
{
    public const int SentenceCount = 320;
    private const int Seed = 20261126;

    private static readonly string[] Templates =
    [
        "turn {onoff} the {room} {device}",
        "please switch {onoff} the {device} in the {room}",
        "can you turn the {room} {device} {onoff} for me",
        "set the {room} {device} to {number} percent",
        "dim the {device} in the {room} a little",
        "make the {room} brighter",
        "set the temperature in the {room} to {number} degrees",
        "it's too {hotcold} in the {room}",
        "what's the temperature {where}",
        "is the {opening} {openclosed}",
        "{openclose} the {opening}",
        "lock the {opening} and turn off all the lights",
        "set a timer for {number} {unit}",
        "how much time is left on my {food} timer",
        "cancel the {food} timer",
        "wake me up at {time} {day}",
        "remind me to {task} {day} at {time}",
        "what's on my calendar {day}",
        "add {food} and {food2} to the shopping list",
        "play {genre} music in the {room}",
        "play the next song",
        "turn the volume {updown}",
        "pause the music",
        "what's the weather like {day} in {city}",
        "will it rain in {city} {day}",
        "do i need an umbrella {day}",
        "how long does it take to get to {place} from here",
        "what time is it in {city}",
        "call {person} on speaker",
        "send a message to {person} saying i'll be late",
        "read me the latest news about {topic}",
        "tell me a joke about {topic}",
        "what does the word {word} mean",
        "how many {unit} are in a {bigunit}",
        "convert {number} dollars to euros",
        "order a {food} pizza for delivery at {time}",
        "book a table for {small} at a {cuisine} restaurant {day}",
        "{sensor} in the {room} reported {number} percent at {time}",
        "motion detected in the {room} at {time}",
        "the {room} window sensor says it was opened {number} minutes ago",
        "battery of the {room} {sensorname} is at {number} percent",
        "smoke alarm in the {room} went off",
        "water leak detected under the {room} sink",
        "the washing machine finished its cycle",
        "nobody is home, switch everything off",
        "good morning, what do i have {day}",
        "thanks, that's all",
        "never mind, stop",
        "i didn't ask for that",
        "who won the {sport} game last night",
        "how old is the {thing}",
        "i'd like to rate this {media} {small} out of five stars",
        "find the movie schedule for {city} {day}",
        "what is {number} times {small}",
        "spell {word} for me",
        "start the vacuum cleaner in the {room}",
        "is the {device} in the {room} still on",
        "run the {scene} scene",
        "activate {scene} mode at {time}",
        "Hey, could you maybe turn {onoff} the {device}? Thanks!",
        "The {room} is really {hotcold} today, isn't it?",
        "Why is the {device} {onoff} again",
        "that is {judgement}",
        "no, that's not what i {askverb}",
        "yes please, {politeness}",
        "i'm sorry, i don't understand {what}",
        "could you repeat {what} please?",
        "{filler}, let me think about it",
        "i {feeling} that {media}",
        "you are {judgement} today",
        "was that {judgement}?",
        "what do you mean by {word}",
        "I think {thing} is {judgement}.",
        "{filler}",
        "{politeness}!",
        "please confirm my {booking}",
        "can you check the status of my {booking}",
        "how do i say {word} in {language}",
        "what's your favourite {media}",
        "tell me something {judgement}",
        "i need help with my {booking}",
        "Sounds {judgement}, thank you.",
        "either the {device} or the {sensorname} is making that noise",
        "what else can you do?",
        "who made you and why",
        "are you a robot",
        "my {device} is broken, what should i do",
    ];

    private static readonly Dictionary<string, string[]> Lists = new()
    {
        ["onoff"] = ["on", "off"],
        ["room"] = ["kitchen", "living room", "bedroom", "bathroom", "garage", "hallway", "office", "basement", "kids' room", "garden", "attic", "dining room"],
        ["device"] = ["lights", "lamp", "ceiling fan", "heater", "air conditioner", "tv", "radio", "coffee machine", "dehumidifier", "floor lamp", "led strip", "speaker"],
        ["number"] = ["five", "ten", "twenty", "twenty one", "30", "forty five", "50", "seventy", "ninety", "one hundred", "3", "12"],
        ["small"] = ["two", "three", "four", "six", "2", "5"],
        ["hotcold"] = ["hot", "cold", "warm", "chilly", "stuffy"],
        ["where"] = ["outside", "in the nursery", "upstairs", "in the greenhouse", "right now"],
        ["opening"] = ["front door", "back door", "garage door", "gate", "bedroom window", "blinds", "curtains"],
        ["openclosed"] = ["open", "closed", "locked", "still open"],
        ["openclose"] = ["open", "close", "shut", "raise", "lower"],
        ["unit"] = ["minutes", "seconds", "hours", "cups", "ounces", "grams"],
        ["bigunit"] = ["day", "pound", "gallon", "kilogram", "week"],
        ["food"] = ["pasta", "rice", "pepperoni", "eggs", "bread", "tea", "banana", "cheese"],
        ["food2"] = ["milk", "butter", "apples", "coffee", "tomatoes", "flour"],
        ["time"] = ["half past six", "7 am", "quarter to eight", "noon", "ten thirty", "9:15", "midnight", "six in the evening"],
        ["day"] = ["today", "tomorrow", "on monday", "this weekend", "tonight", "next friday", "every weekday"],
        ["task"] = ["water the plants", "call the dentist", "take out the trash", "pick up the kids", "pay the electricity bill"],
        ["genre"] = ["jazz", "classical", "some relaxing", "rock", "the beatles", "lo-fi", "country"],
        ["updown"] = ["up", "down", "up a bit", "all the way down"],
        ["city"] = ["london", "new york", "paris", "tokyo", "berlin", "sydney", "toronto", "madrid"],
        ["place"] = ["the airport", "work", "the train station", "grandma's house", "the nearest pharmacy"],
        ["person"] = ["mom", "dad", "john", "the office", "sarah", "my brother"],
        ["topic"] = ["technology", "cats", "football", "the stock market", "space", "cooking"],
        ["word"] = ["serendipity", "ephemeral", "thermostat", "quantization", "ubiquitous"],
        ["cuisine"] = ["italian", "thai", "mexican", "japanese", "indian"],
        ["sensor"] = ["humidity", "the air quality sensor", "co2 level", "the soil moisture sensor"],
        ["sensorname"] = ["motion sensor", "door sensor", "thermometer", "smoke detector"],
        ["sport"] = ["basketball", "football", "hockey", "baseball", "tennis"],
        ["thing"] = ["eiffel tower", "universe", "president", "great wall of china"],
        ["media"] = ["book", "album", "movie", "podcast"],
        ["scene"] = ["movie night", "good night", "away", "dinner", "reading"],
        ["judgement"] = ["great", "wrong", "confusing", "so funny", "useful", "correct", "strange", "off the mark", "perfect", "boring"],
        ["askverb"] = ["asked", "meant", "wanted", "said"],
        ["politeness"] = ["thank you", "thanks a lot", "go ahead", "that would be nice", "cheers", "much appreciated"],
        ["what"] = ["that", "the question", "what you just said", "the last part", "your answer"],
        ["filler"] = ["hmm", "mm-hmm", "okay", "well", "oh no", "alright then", "yeah sure", "nope"],
        ["feeling"] = ["love", "hate", "really like", "don't care about", "can't stand"],
        ["booking"] = ["reservation", "flight", "order", "appointment", "hotel booking", "delivery"],
        ["language"] = ["spanish", "french", "german", "japanese", "italian"],
    };

    /// <summary>The calibration sentences, always the same ones.</summary>
    public static IReadOnlyList<string> Sentences()
    {
        var random = new Random(Seed);
        var sentences = new List<string>(SentenceCount);
        for (int i = 0; i < SentenceCount; i++)
        {
            sentences.Add(Expand(Templates[i % Templates.Length], random));
        }
        return sentences;
    }

    private static string Expand(string template, Random random)
    {
        var text = new System.Text.StringBuilder();
        int position = 0;
        while (position < template.Length)
        {
            int open = template.IndexOf('{', position);
            if (open < 0)
            {
                text.Append(template, position, template.Length - position);
                break;
            }
            int close = template.IndexOf('}', open);
            text.Append(template, position, open - position);
            string[] values = Lists[template[(open + 1)..close]];
            text.Append(values[random.Next(values.Length)]);
            position = close + 1;
        }
        return text.ToString();
    }
}
