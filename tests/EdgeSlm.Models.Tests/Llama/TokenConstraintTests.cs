using System.Text.Json;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Llama;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Llama;

public sealed class TokenConstraintTests
{
    private static readonly string[] Intents = ["turn_on_lights", "turn_off_lights", "set_timer", "weather", "play_music", "café_order"];

    [Theory]
    [InlineData(0f, 1)]
    [InlineData(1.2f, 2)]
    [InlineData(1.2f, 3)]
    public void Generation_under_the_filter_ends_on_exactly_one_allowed_string(float temperature, int seed)
    {
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyQwen2(), QuantType.Q4_0));
        DecoderTokenizer tokenizer = model.CreateTokenizer();
        var filter = new TokenConstraint(tokenizer, Intents);
        using var decoder = new LlamaDecoder(model, context: 128);
        var sampler = new TokenSampler(model.Config.VocabularySize, temperature, seed);
        var logits = new float[model.Config.VocabularySize];
        decoder.Prefill(tokenizer.Encode("Intent of 'switch the lights on':", addSpecial: true), logits);
        var reply = new List<int>();
        for (int step = 0; step < 40; step++)
        {
            filter.Apply(logits);
            int next = sampler.Next(logits);
            filter.Accept(next);
            if (tokenizer.IsEndOfGeneration(next)) break;
            reply.Add(next);
            decoder.Decode(next, logits);
        }
        string text = tokenizer.Decode(reply.ToArray());
        Assert.Contains(text, Intents);
        Assert.True(filter.IsComplete);
    }

    [Fact]
    public void The_filter_allows_only_continuations_and_ends_only_on_complete_strings()
    {
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q8_0));
        DecoderTokenizer tokenizer = model.CreateTokenizer();
        var filter = new TokenConstraint(tokenizer, ["on", "one", "off"]);
        var logits = new float[tokenizer.VocabularySize];
        filter.Apply(logits);
        int on = tokenizer.Encode("on", addSpecial: false).Single();
        int o = tokenizer.Encode("o", addSpecial: false).Single();
        int x = tokenizer.Encode("x", addSpecial: false).Single();
        Assert.Equal(0f, logits[on]);
        Assert.Equal(0f, logits[o]);
        Assert.Equal(float.NegativeInfinity, logits[x]);
        Assert.Equal(float.NegativeInfinity, logits[Gpt2Vocabulary.EndOfTextId]); // nothing complete yet
        filter.Accept(on);
        Assert.True(filter.IsComplete);
        Array.Clear(logits);
        filter.Apply(logits);
        Assert.Equal(0f, logits[Gpt2Vocabulary.EndOfTextId]);          // "on" may end here
        Assert.Equal(0f, logits[tokenizer.Encode("e", addSpecial: false).Single()]); // or go on to "one"
        Assert.Equal(float.NegativeInfinity, logits[tokenizer.Encode("f", addSpecial: false).Single()]);
        Assert.Throws<InvalidOperationException>(() => filter.Accept(x));
        filter.Reset();
        Assert.False(filter.IsComplete);
    }

    private static readonly JsonGrammarKey[] Keys =
    [
        new("name", ["kitchen light", "porch", "the \"big\" lamp"]),
        new("brightness", ["10", "50", "100"]),
        new("room", ["turn on the kitchen light", "kitchen", "light"]),
    ];

    [Fact]
    public void The_json_grammar_accepts_ordered_subsets_of_the_keys_with_their_values_only()
    {
        ByteAutomaton grammar = JsonObjectGrammar.Build(Keys);
        Assert.True(grammar.Accepts("{}"));
        Assert.True(grammar.Accepts("{\"name\":\"porch\"}"));
        Assert.True(grammar.Accepts("{\"name\":\"the \\\"big\\\" lamp\",\"room\":\"kitchen\"}"));
        Assert.True(grammar.Accepts("{\"brightness\":\"50\",\"room\":\"light\"}"));
        Assert.False(grammar.Accepts("{\"room\":\"kitchen\",\"name\":\"porch\"}"));    // out of order
        Assert.False(grammar.Accepts("{\"name\":\"porch\",\"name\":\"porch\"}"));      // twice
        Assert.False(grammar.Accepts("{\"name\":\"garage\"}"));                         // not a value of name
        Assert.False(grammar.Accepts("{\"name\":\"\"}"));                               // empty
        Assert.False(grammar.Accepts("{\"colour\":\"red\"}"));                          // not a key
        Assert.False(grammar.Accepts("{\"name\":\"porch\""));                            // not closed
        Assert.False(grammar.Accepts("{ \"name\": \"porch\" }"));                        // compact only
    }

    [Fact]
    public void Sampled_objects_always_parse_and_obey_the_grammar()
    {
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q4_0));
        DecoderTokenizer tokenizer = model.CreateTokenizer();
        ByteAutomaton grammar = JsonObjectGrammar.Build(Keys);
        using var decoder = new LlamaDecoder(model, context: 256);
        var logits = new float[model.Config.VocabularySize];
        int[] prompt = tokenizer.Encode("Slots of 'turn on the kitchen light':", addSpecial: true);
        decoder.Prefill(prompt, logits);
        var promptLogits = logits.ToArray();
        var keysSeen = new HashSet<string>();
        for (int seed = 1; seed <= 60; seed++)
        {
            var constraint = new TokenConstraint(tokenizer, grammar);
            // Hot sampling so that the draws wander through the grammar rather than repeat the argmax.
            var sampler = new TokenSampler(model.Config.VocabularySize, temperature: 3f, seed: seed);
            decoder.Truncate(prompt.Length);
            promptLogits.CopyTo(logits, 0);
            var reply = new List<int>();
            bool ended = false;
            for (int step = 0; step < 120 && !ended; step++)
            {
                constraint.Apply(logits);
                int next = sampler.Next(logits);
                constraint.Accept(next);
                if (tokenizer.IsEndOfGeneration(next))
                {
                    ended = true;
                    break;
                }
                reply.Add(next);
                decoder.Decode(next, logits);
            }
            string text = tokenizer.Decode(reply.ToArray());
            Assert.True(ended, $"seed {seed}: no end within 120 tokens: {text}");
            Assert.True(grammar.Accepts(text), $"seed {seed}: {text}");
            using JsonDocument json = JsonDocument.Parse(text);
            string[] names = Keys.Select(k => k.Name).ToArray();
            int last = -1;
            foreach (JsonProperty property in json.RootElement.EnumerateObject())
            {
                int index = Array.IndexOf(names, property.Name);
                Assert.True(index > last, $"seed {seed}: key '{property.Name}' out of order in {text}");
                last = index;
                Assert.Contains(property.Value.GetString(), Keys[index].Values);
                keysSeen.Add(property.Name);
            }
        }
        Assert.Equal(3, keysSeen.Count); // the draws reached every key
    }

    [Fact]
    public void Forced_text_is_what_the_grammar_leaves_no_choice_about()
    {
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q8_0));
        DecoderTokenizer tokenizer = model.CreateTokenizer();
        var constraint = new TokenConstraint(tokenizer, JsonObjectGrammar.Build([new JsonGrammarKey("name", ["porch"])]));
        Assert.Equal("{", constraint.ForcedText());
        foreach (int id in tokenizer.Encode("{\"na", addSpecial: false)) constraint.Accept(id);
        // One key with one value: the rest of the object is forced, up to the accepting state after '}'.
        Assert.Equal("me\":\"porch\"}", constraint.ForcedText());
        var two = new TokenConstraint(tokenizer, JsonObjectGrammar.Build([new JsonGrammarKey("name", ["porch", "patio"])]));
        foreach (int id in tokenizer.Encode("{\"name\":\"p", addSpecial: false)) two.Accept(id);
        Assert.Equal("", two.ForcedText()); // porch or patio: the model chooses
    }
}
