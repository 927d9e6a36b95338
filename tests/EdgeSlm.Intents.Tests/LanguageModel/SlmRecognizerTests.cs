using System.Numerics.Tensors;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.LanguageModel;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Llama;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.Intents.Tests.LanguageModel;

public sealed class SlmRecognizerTests
{
    public const string HomeYaml = """
        language: en
        lists:
          name:
            values: ["kitchen light", "porch light", "fan"]
          brightness:
            range: {from: 0, to: 100}
        intents:
          HassTurnOn:
            description: Turn a device on
            slots:
              name: the device to turn on
            data:
              - sentences: ["turn on [the] {name}", "switch on [the] {name}"]
          HassLightSet:
            description: Set how bright a light is
            data:
              - sentences: ["set [the] {name} to {brightness} percent"]
          GetWeather:
            description: Tell the weather forecast
            data:
              - sentences: ["what is the weather [like]"]
        """;

    private static readonly string[] Requests =
    [
        "set the kitchen light to 40 percent", "could you make the porch light dimmer please", "fan at half speed",
        "turn the \"big\" lamp to 70", "what's it like outside", "kitchen light 20", "dim everything to 5 percent in the kitchen",
        "i'd like the fan on", "brighten the porch light up to one hundred", "set it to 15",
    ];

    private static IntentDefinitions Home => IntentDefinitions.FromYaml(HomeYaml, "home.yaml");

    [Fact]
    public void Descriptions_are_read_from_yaml_and_name_intents_and_slots()
    {
        IntentDefinitions definitions = Home;
        Assert.Equal("Turn a device on", definitions.Descriptions["HassTurnOn"].Text);
        Assert.Equal("the device to turn on", definitions.Descriptions["HassTurnOn"].Slots["name"]);
        SlmPrompt prompt = SlmPrompt.Build(definitions, definitions.IntentNames, new Dictionary<string, IReadOnlyList<string>> { ["HassTurnOn"] = ["name"] },
            SlmPrompt.ExampleRequests(definitions, 2, 1), ChatTemplate.ChatMl);
        Assert.Contains("- HassTurnOn: Turn a device on\n  slots: name (the device to turn on)\n", prompt.Prefix);
        Assert.Contains("- none: anything else", prompt.Prefix);
        Assert.StartsWith("<|im_start|>system\n", prompt.Prefix);
        Assert.EndsWith("<|im_start|>user\n", prompt.Prefix);
        Assert.Equal("<|im_end|>\n<|im_start|>assistant\n", prompt.Suffix);
    }

    [Theory]
    [InlineData("llama", QuantType.Q4_0)]
    [InlineData("qwen2", QuantType.F32)]
    [InlineData("llama-sentencepiece", QuantType.Q8_0)]
    public void The_kept_prompt_state_gives_exactly_the_logits_of_a_full_recomputation(string architecture, QuantType type)
    {
        DecoderShape shape = architecture switch
        {
            "llama" => DecoderShape.TinyLlama(),
            "qwen2" => DecoderShape.TinyQwen2(tied: false),
            _ => DecoderShape.TinyLlamaSentencePiece(),
        };
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(shape, type));
        DecoderTokenizer tokenizer = model.CreateTokenizer();
        using SlmRecognizer recognizer = SlmRecognizer.Build(model, tokenizer, Home, new SlmOptions(Threads: 2));
        int V = model.Config.VocabularySize;
        var kept = new float[V];
        var full = new float[V];
        // Other requests in between: each must leave the prompt's state as it was.
        recognizer.Recognize("turn on the porch light, and then the fan", ["HassTurnOn", "HassLightSet"], TestContext.Current.CancellationToken);
        recognizer.Recognize(Requests[0], deadline: TestContext.Current.CancellationToken);
        foreach (string text in new[] { Requests[1], Requests[3] })
        {
            recognizer.ReplyLogits(text, kept);
            using var fresh = new LlamaDecoder(model, context: 1024, threads: 2);
            int[] all = [.. tokenizer.Encode(recognizer.Prompt.Prefix, addSpecial: true, parseSpecial: true),
                .. recognizer.RequestTokens(text, out _), .. tokenizer.Encode(recognizer.Prompt.Suffix, addSpecial: false, parseSpecial: true)];
            fresh.Prefill(all, full);
            Assert.Equal(full, kept);
        }
    }

    [Fact]
    public void Candidates_are_normalised_over_the_intents_allowed_and_agree_with_scoring_each_alone()
    {
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q8_0));
        DecoderTokenizer tokenizer = model.CreateTokenizer();
        using SlmRecognizer recognizer = SlmRecognizer.Build(model, tokenizer, Home);
        int V = model.Config.VocabularySize;
        foreach (string[]? filter in new[] { null, new[] { "HassTurnOn", "GetWeather" }, new[] { "HassLightSet" } })
        {
            SlmAnswer answer = recognizer.Recognize(Requests[2], filter, TestContext.Current.CancellationToken);
            string[] expected = [.. (filter ?? ["GetWeather", "HassLightSet", "HassTurnOn"]), SlmPrompt.NoneOfThese];
            Assert.Equal(expected.Order(), answer.Probabilities.Select(p => p.Intent).Order());
            Assert.Equal(1.0, answer.Probabilities.Sum(p => (double)p.Probability), 5);
            Assert.True(answer.Intent is null || expected.Contains(answer.Intent));
            Assert.Equal(answer.Probabilities[0].Probability, answer.Confidence);

            // Each candidate scored on its own from the request's logits, with no sharing of its leading tokens.
            var start = new float[V];
            var logP = new Dictionary<string, double>();
            foreach (string intent in expected)
            {
                recognizer.ReplyLogits(Requests[2], start);
                using var alone = new LlamaDecoder(model, context: 1024);
                int[] prompt = [.. tokenizer.Encode(recognizer.Prompt.Prefix, addSpecial: true, parseSpecial: true),
                    .. recognizer.RequestTokens(Requests[2], out _), .. tokenizer.Encode(recognizer.Prompt.Suffix, addSpecial: false, parseSpecial: true)];
                alone.Prefill(prompt, start);
                int[] continuation = tokenizer.Encode(intent + "\n", addSpecial: false);
                logP[intent] = alone.ScoreContinuation(start, continuation, new float[continuation.Length]);
            }
            double max = logP.Values.Max();
            double sum = logP.Values.Sum(v => Math.Exp(v - max));
            foreach ((string intent, float probability) in answer.Probabilities)
            {
                Assert.Equal(Math.Exp(logP[intent] - max) / sum, probability, 3);
            }
        }
    }

    [Fact]
    public void Generated_slots_are_always_spans_of_the_request_or_values_of_the_list()
    {
        // Several random models: greedy decoding under the grammar often closes the object at once ("{}"), so
        // different weights are what make the draws wander through keys, spans and list values.
        int withSlots = 0;
        for (int seed = 1; seed <= 4; seed++)
        {
            using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyQwen2(), QuantType.Q4_0, seed));
            using SlmRecognizer recognizer = SlmRecognizer.Build(model, model.CreateTokenizer(), Home);
            foreach (string text in Requests)
            {
                // The slots as generated once the intent with two slots is chosen (a random model rarely chooses it itself).
                IReadOnlyList<SlotValue>? slots = recognizer.Slots(text, "HassLightSet", TestContext.Current.CancellationToken);
                Assert.NotNull(slots);
                withSlots += slots.Count > 0 ? 1 : 0;
                Assert.Equal(slots.Count, slots.Select(s => s.Slot).Distinct().Count());
                foreach (SlotValue slot in slots)
                {
                    Assert.Contains(slot.Slot, new[] { "name", "brightness" });
                    if (slot.Raw.Length == 0)
                    {
                        Assert.Contains(slot.Value, new[] { "kitchen light", "porch light", "fan" }); // a list value, not spoken
                        continue;
                    }
                    Assert.Equal(slot.Raw, text[slot.Start..slot.End]);
                    Assert.True(slot.Start == 0 || !char.IsLetterOrDigit(text[slot.Start - 1]), $"'{slot.Raw}' starts inside a word of '{text}'");
                    Assert.True(slot.End == text.Length || !char.IsLetterOrDigit(text[slot.End]), $"'{slot.Raw}' ends inside a word of '{text}'");
                }
                SlmAnswer answer = recognizer.Recognize(text, ["HassLightSet"], TestContext.Current.CancellationToken);
                if (answer.Intent is not null)
                {
                    Assert.Equal(slots, answer.Slots); // Recognize generates the same
                }
            }
        }
        Assert.True(withSlots > 0, "no request got slots: the grammar was never exercised");
    }

    [Fact]
    public void The_model_decides_exactly_the_requests_the_classifier_did_not_recognise()
    {
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q4_0));
        using SlmRecognizer recognizer = SlmRecognizer.Build(model, model.CreateTokenizer(), Home);
        string[] texts = ["turn on the fan", "kitchen light 20", "blah blah"];
        IntentResult[] results =
        [
            new(texts[0], "HassTurnOn", 1f, [], ExactMatch: true),
            new(texts[1], "HassLightSet", 0.9f, [], ExactMatch: false),
            new(texts[2], null, 0.3f, [], ExactMatch: false),
        ];
        IntentResult[] before = results.ToArray();
        Assert.Equal(0, SlmFallback.Apply(results, texts, null, recognizer, TestContext.Current.CancellationToken));
        Assert.Same(before[0], results[0]);
        Assert.Same(before[1], results[1]);
        Assert.Equal(IntentSource.Slm, results[2].Source);
        SlmAnswer direct = recognizer.Recognize(texts[2], deadline: TestContext.Current.CancellationToken);
        Assert.Equal(direct.Intent, results[2].Intent);
        Assert.Equal(direct.Confidence, results[2].Confidence);
    }

    [Fact]
    public void A_model_slower_than_the_budget_leaves_the_classifier_answer()
    {
        // A deliberately slow model: 8 layers of 512 over GPT-2's vocabulary, on one thread, against a 1 ms budget.
        var slow = new DecoderShape("llama", 512, 8, 8, 4, 1536, 10000f, 1e-5f, 1024, Tied: true, "smollm", AddBos: false);
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(slow, QuantType.Q4_0));
        using SlmRecognizer recognizer = SlmRecognizer.Build(model, model.CreateTokenizer(), Home, new SlmOptions(Threads: 1));
        string[] texts = ["blah blah", "something else entirely"];
        IntentResult[] results = [new(texts[0], null, 0.3f, [], ExactMatch: false), new(texts[1], null, 0.2f, [], ExactMatch: false)];
        IntentResult[] before = results.ToArray();
        // The budget is a point on the clock, read between forward passes: the first request's own tokens take
        // longer than 1 ms on this model, so it gives up at the check after them, and the second at its start.
        Assert.Equal(2, SlmFallback.Apply(results, texts, null, recognizer, SlmDeadline.After(TimeSpan.FromMilliseconds(1), TestContext.Current.CancellationToken)));
        Assert.Equal(before, results);
        Assert.All(results, r => Assert.Equal(IntentSource.Classifier, r.Source));
        // The same model with time to spare answers: the budget, not the model, decided.
        Assert.Equal(0, SlmFallback.Apply(results, texts, null, recognizer, SlmDeadline.After(TimeSpan.FromMinutes(5), TestContext.Current.CancellationToken)));
        Assert.All(results, r => Assert.Equal(IntentSource.Slm, r.Source));
    }

    [Fact]
    public void A_chain_model_picks_the_intent_its_output_layer_favours()
    {
        IntentDefinitions definitions = Home;
        // Which tokens follow the prompt: from any model with the same vocabulary.
        using LlamaModel plain = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q8_0));
        DecoderTokenizer tokenizer = plain.CreateTokenizer();
        int[] chain = ChainFor(tokenizer, definitions, "GetWeather");
        using LlamaModel model = LlamaModel.Load(ChainDecoder.Cached(chain));
        using SlmRecognizer recognizer = SlmRecognizer.Build(model, model.CreateTokenizer(), definitions);
        foreach (string text in Requests)
        {
            SlmAnswer answer = recognizer.Recognize(text, deadline: TestContext.Current.CancellationToken);
            Assert.Equal("GetWeather", answer.Intent);
            Assert.True(answer.Confidence > 0.99f, $"{answer.Confidence}");
        }
        // Filtered out, it cannot be chosen.
        Assert.NotEqual("GetWeather", recognizer.Recognize(Requests[0], ["HassTurnOn"], TestContext.Current.CancellationToken).Intent);
        // No deadline given is no limit (the default value once read as a deadline long past, and every call gave up).
        SlmAnswer unbounded = recognizer.Recognize(Requests[1], null, SlmDeadline.None);
        Assert.False(unbounded.TimedOut);
        Assert.Equal("GetWeather", unbounded.Intent);
        Assert.False(SlmDeadline.None.Passed);
        Assert.True(SlmDeadline.After(TimeSpan.Zero, TestContext.Current.CancellationToken).Passed);
    }

    /// <summary>The last token of the prompt before the reply, then the tokens of the intent's name and newline.</summary>
    public static int[] ChainFor(DecoderTokenizer tokenizer, IntentDefinitions definitions, string intent)
    {
        SlmPrompt prompt = SlmPrompt.Build(definitions, definitions.IntentNames, new Dictionary<string, IReadOnlyList<string>>(), new Dictionary<string, IReadOnlyList<string>>(), template: null);
        int last = tokenizer.Encode(prompt.Suffix, addSpecial: false, parseSpecial: true)[^1];
        return [last, .. tokenizer.Encode(intent + "\n", addSpecial: false)];
    }
}
