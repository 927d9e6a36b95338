using System.Text.Json;
using EdgeSlm.EdgeModule.Telemetry;
using EdgeSlm.EdgeModule.Wyoming;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Slots;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeSlm.EdgeModule.Tests.Wyoming;

/// <summary>describe, transcript and recognize are answered as Home Assistant's Wyoming integration expects.</summary>
public sealed class WyomingIntentHandlerTests
{
    /// <summary>A classifier that knows a few sentences by heart; anything else is not recognized.</summary>
    internal static Task<IntentResult> Classify(string text, CancellationToken cancellation) => Task.FromResult(text switch
    {
        "turn on the kitchen light" => new IntentResult(text, "HassTurnOn", 1f,
            [new SlotValue("name", "Kitchen Light", "kitchen light", 12, 25), new SlotValue("domain", "light", "", 0, 0)], ExactMatch: true),
        "set the temperature to 21.5" => new IntentResult(text, "HassClimateSetTemperature", 0.9f,
            [new SlotValue("temperature", "21.5", "21.5", 23, 27, SlotKind.Number, 21.5)], ExactMatch: false),
        "order a pizza" => new IntentResult(text, "OrderPizza", 0.95f, [], ExactMatch: false),
        "explode" => throw new InvalidOperationException("classifier bug"),
        _ => new IntentResult(text, null, 0.2f, [], ExactMatch: false),
    });

    private static WyomingIntentHandler Handler(WyomingSettings? settings = null, InferenceStatistics? statistics = null) =>
        new(Classify, () => null, HomeAssistantIntents.BuiltIn, settings ?? new WyomingSettings(), NullLogger.Instance, statistics);

    private static WyomingEvent Transcript(string text, string type = "transcript") => WyomingEvent.Create(type, w =>
    {
        w.WriteString("text", text);
        w.WriteString("language", "en");
        w.WriteStartObject("context");
        w.WriteString("conversation_id", "c1");
        w.WriteString("satellite_id", "kitchen");
        w.WriteEndObject();
    });

    [Fact]
    public async Task Transcript_is_answered_with_the_intent_its_entities_and_the_context_as_it_came()
    {
        WyomingEvent answer = (await Handler().AnswerAsync(Transcript("turn on the kitchen light"), TestContext.Current.CancellationToken))!;
        Assert.Equal("intent", answer.Type);
        Assert.Equal("HassTurnOn", answer.String("name"));
        Assert.Equal("""[{"name":"name","value":"Kitchen Light"},{"name":"domain","value":"light"}]""", answer.Data["entities"].GetRawText());
        Assert.Equal("""{"conversation_id":"c1","satellite_id":"kitchen"}""", answer.Data["context"].GetRawText());
    }

    [Fact]
    public async Task Recognize_is_answered_like_transcript_and_numbers_are_json_numbers()
    {
        WyomingEvent answer = (await Handler().AnswerAsync(Transcript("set the temperature to 21.5", "recognize"), TestContext.Current.CancellationToken))!;
        Assert.Equal("intent", answer.Type);
        JsonElement entity = Assert.Single(answer.Data["entities"].EnumerateArray());
        Assert.Equal(JsonValueKind.Number, entity.GetProperty("value").ValueKind);
        Assert.Equal(21.5, entity.GetProperty("value").GetDouble());
    }

    [Fact]
    public async Task Not_recognized_carries_what_home_assistant_should_say_and_the_context()
    {
        var settings = new WyomingSettings { NotRecognizedText = "Pardon?" };
        WyomingEvent answer = (await Handler(settings).AnswerAsync(Transcript("la la la"), TestContext.Current.CancellationToken))!;
        Assert.Equal("not-recognized", answer.Type);
        Assert.Equal("Pardon?", answer.String("text"));
        Assert.Equal("c1", answer.Data["context"].GetProperty("conversation_id").GetString());
    }

    [Fact]
    public async Task An_intent_home_assistant_cannot_execute_is_not_recognized_unless_configured_otherwise()
    {
        Assert.Equal("not-recognized", (await Handler().AnswerAsync(Transcript("order a pizza"), TestContext.Current.CancellationToken))!.Type);
        WyomingEvent answer = (await Handler(new WyomingSettings { HomeAssistantIntentsOnly = false }).AnswerAsync(Transcript("order a pizza"), TestContext.Current.CancellationToken))!;
        Assert.Equal("intent", answer.Type);
        Assert.Equal("OrderPizza", answer.String("name"));
    }

    [Fact]
    public async Task Describe_is_answered_with_one_installed_intent_program_and_its_model_languages()
    {
        WyomingEvent info = (await Handler(new WyomingSettings { Languages = "en,de" }).AnswerAsync(WyomingEvent.Empty("describe"), TestContext.Current.CancellationToken))!;
        Assert.Equal("info", info.Type);
        JsonElement program = Assert.Single(info.Data["intent"].EnumerateArray());
        Assert.Equal("EdgeSlm", program.GetProperty("name").GetString());
        Assert.True(program.GetProperty("installed").GetBoolean());
        Assert.Equal(JsonValueKind.String, program.GetProperty("attribution").GetProperty("url").ValueKind);
        Assert.Equal(JsonValueKind.String, program.GetProperty("description").ValueKind);
        Assert.Equal(JsonValueKind.String, program.GetProperty("version").ValueKind);
        JsonElement model = Assert.Single(program.GetProperty("models").EnumerateArray());
        Assert.True(model.GetProperty("installed").GetBoolean());
        Assert.Equal(["en", "de"], model.GetProperty("languages").EnumerateArray().Select(l => l.GetString()));
        Assert.Equal(JsonValueKind.String, model.GetProperty("attribution").GetProperty("name").ValueKind);
    }

    [Fact]
    public async Task Other_events_are_ignored()
    {
        Assert.Null(await Handler().AnswerAsync(WyomingEvent.Empty("audio-chunk"), TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task A_request_without_text_or_a_failing_classifier_is_an_error_event_and_counted()
    {
        var statistics = new InferenceStatistics();
        WyomingIntentHandler handler = Handler(statistics: statistics);
        WyomingEvent noText = (await handler.AnswerAsync(WyomingEvent.Create("transcript", w => w.WriteNumber("text", 5)), TestContext.Current.CancellationToken))!;
        Assert.Equal("error", noText.Type);
        Assert.Equal(WyomingIntentHandler.CodeRequestInvalid, noText.String("code"));
        WyomingEvent failed = (await handler.AnswerAsync(Transcript("explode"), TestContext.Current.CancellationToken))!;
        Assert.Equal(WyomingIntentHandler.CodeClassificationFailed, failed.String("code"));
        await handler.AnswerAsync(Transcript("turn on the kitchen light"), TestContext.Current.CancellationToken);
        InferenceStatisticsSnapshot snapshot = statistics.Snapshot();
        Assert.Equal(1, snapshot.Count);
        Assert.Equal(2, snapshot.Errors);
    }
}
